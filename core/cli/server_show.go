package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
)

func serverShowCommand() *ucli.Command {
	return &ucli.Command{
		Name: "show", Usage: "show an instance: status, transition in flight, fault and flags", ArgsUsage: "ID",
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
			in, err := cl.Instance(c.Context, id)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, in)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
			row("id", in.ID)
			row("name", in.Name)
			row("status", in.Status)
			row("vm_state", in.VMState)
			row("power_state", in.PowerState)
			if in.TaskState != "" {
				row("task_state", in.TaskState)
			}
			row("flavor", fmt.Sprintf("%s (%d vcpu, %d MB, %d GB)", in.Flavor.ID, in.Flavor.VCPUs, in.Flavor.RAMMB, in.Flavor.DiskGB))
			if in.OldFlavor != nil {
				row("old_flavor", in.OldFlavor.ID+" (kept until the resize is confirmed or reverted)")
			}
			row("image", in.Image.ID)
			row("node", in.Node+" ("+in.Driver+")")
			if t := in.Transition; t != nil {
				row("transition", fmt.Sprintf("%s %s (step %d of [%s], %s -> %s, request %s)", t.Action, orDash(t.Current),
					t.Step+1, strings.Join(t.Steps, " "), orDash(t.Origin), t.Target, t.RequestID))
			}
			if f := in.Fault; f != nil {
				row("fault", fmt.Sprintf("%s (during %s, %s)", f.Message, orDash(f.During), f.At.UTC().Format(timeFormat)))
			}
			for _, f := range in.Flags {
				row("flag", fmt.Sprintf("%s: %s (since %s)", f.Kind, f.Message, f.Since.UTC().Format(timeFormat)))
			}
			if in.Unreadable != "" {
				row("unreadable", in.Unreadable)
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
