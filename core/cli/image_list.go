package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
)

func imageListCommand() *ucli.Command {
	return &ucli.Command{
		Name: "list", Usage: "list the images instances can be built from",
		Flags: clientFlags(jsonFlag),
		Action: func(c *ucli.Context) error {
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			is, err := cl.Images(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, is)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tFORMAT\tSOURCE")
			for _, i := range is {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.ID, i.Name, i.DiskFormat, i.Source)
			}
			return tw.Flush()
		},
	}
}
