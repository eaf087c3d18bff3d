package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
)

func flavorListCommand() *ucli.Command {
	return &ucli.Command{
		Name: "list", Usage: "list the flavors instances can be created with",
		Flags: clientFlags(jsonFlag),
		Action: func(c *ucli.Context) error {
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			fs, err := cl.Flavors(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, fs)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tVCPUS\tRAM_MB\tDISK_GB")
			for _, f := range fs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", f.ID, f.Name, f.VCPUs, f.RAMMB, f.DiskGB)
			}
			return tw.Flush()
		},
	}
}
