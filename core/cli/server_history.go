package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
)

func serverHistoryCommand() *ucli.Command {
	return &ucli.Command{
		Name: "history", Usage: "show every status an instance has had, also after deletion", ArgsUsage: "ID",
		Flags: clientFlags(jsonFlag),
		Action: func(c *ucli.Context) error {
			id, err := instanceArg(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			h, err := cl.History(c.Context, id)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, h)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tAT\tFROM\tTO\tACTION\tCAUSE\tREQUEST\tMESSAGE")
			for _, r := range h {
				msg := r.Message
				if r.Policy != "" {
					msg = "[" + r.Policy + "] " + msg
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.At.UTC().Format(timeFormat), r.From, r.To, r.Action, r.Cause, r.RequestID, msg)
			}
			return tw.Flush()
		},
	}
}
