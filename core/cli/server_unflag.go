package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

func serverUnflagCommand() *ucli.Command {
	return &ucli.Command{
		Name: "unflag", Usage: "clear an instance's reconciler flags (a disagreement that persists is flagged again)", ArgsUsage: "ID",
		Flags: clientFlags(),
		Action: func(c *ucli.Context) error {
			id, err := instanceArg(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			in, err := cl.Unflag(c.Context, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s %s, no flags\n", in.ID, in.Status)
			return nil
		},
	}
}
