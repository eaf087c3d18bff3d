package cli

import (
	ucli "github.com/urfave/cli/v2"
)

func serverDeleteCommand() *ucli.Command {
	return &ucli.Command{
		Name: "delete", Usage: "delete an instance (also while another action is in flight)", ArgsUsage: "ID",
		Flags: clientFlags(waitFlag),
		Action: func(c *ucli.Context) error {
			id, err := instanceArg(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			r, err := cl.Delete(c.Context, id)
			if err != nil {
				return err
			}
			if c.Bool("wait") {
				return wait(c, cl, id, r.RequestID)
			}
			return nil
		},
	}
}
