package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
)

func serverFlagsCommand() *ucli.Command {
	return &ucli.Command{
		Name: "flags", Usage: "list what the reconciler noticed and left: flagged instances and VMs no record names",
		Flags: clientFlags(jsonFlag),
		Action: func(c *ucli.Context) error {
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			fl, err := cl.Flags(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, fl)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNODE\tKIND\tRECORDED\tOBSERVED\tSINCE\tREASON")
			for _, in := range fl.Instances {
				for _, f := range in.Flags {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Node, f.Kind, f.Recorded, f.Observed, f.Since.UTC().Format(timeFormat), f.Message)
				}
			}
			for _, u := range fl.Unmanaged {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Node, "unmanaged", "-", u.Power, u.Since.UTC().Format(timeFormat), u.Reason)
			}
			return tw.Flush()
		},
	}
}
