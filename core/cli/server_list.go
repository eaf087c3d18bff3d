package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
)

func serverListCommand() *ucli.Command {
	return &ucli.Command{
		Name: "list", Usage: "list instances",
		Flags: clientFlags(jsonFlag),
		Action: func(c *ucli.Context) error {
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			all, err := cl.Instances(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, all)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tFLAVOR\tIMAGE\tNODE")
			for _, in := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Name, in.Status, in.Flavor.ID, in.Image.ID, in.Node)
			}
			return tw.Flush()
		},
	}
}
