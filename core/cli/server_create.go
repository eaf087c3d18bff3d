package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/lucid-project/lucid/core/api/client"
)

func serverCreateCommand() *ucli.Command {
	return &ucli.Command{
		Name: "create", Usage: "create an instance; prints its ID", ArgsUsage: "NAME",
		Flags: clientFlags(waitFlag,
			&ucli.StringFlag{Name: "flavor", Required: true, Usage: "flavor ID or name (lucid flavor list)"},
			&ucli.StringFlag{Name: "image", Required: true, Usage: "image ID or name (lucid image list)"},
		),
		Action: func(c *ucli.Context) error {
			name := c.Args().First()
			if name == "" || c.NArg() > 1 {
				return fmt.Errorf("server create: exactly one NAME is required")
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			id, r, err := cl.Create(c.Context, client.CreateRequest{Name: name, FlavorRef: c.String("flavor"), ImageRef: c.String("image")})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, id)
			if c.Bool("wait") {
				return wait(c, cl, id, r.RequestID)
			}
			return nil
		},
	}
}
