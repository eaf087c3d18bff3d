package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/lucid-project/lucid/core/api/client"
)

// Shared pieces of the `lucid server` subcommands.

var (
	waitFlag = &ucli.BoolFlag{Name: "wait", Usage: "wait until the action ends, printing each status it shows"}
	jsonFlag = &ucli.BoolFlag{Name: "json", Usage: "print the API's JSON"}
)

// timeFormat is fixed-width, so history columns line up.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// instanceArg returns the ID argument or an error naming the command.
func instanceArg(c *ucli.Context) (string, error) {
	id := c.Args().First()
	if id == "" || c.NArg() > 1 {
		return "", fmt.Errorf("%s: exactly one instance ID is required", c.Command.FullName())
	}
	return id, nil
}

// wait follows request requestID on instance id, printing each status the
// action shows as a line. An action that failed (ended in ERROR, or back
// where it started with a fault) is an error carrying the fault.
func wait(c *ucli.Context, cl *client.Client, id, requestID string) error {
	var last client.HistoryRecord
	_, err := cl.Wait(c.Context, id, requestID, func(h client.HistoryRecord) {
		fmt.Fprintln(c.App.Writer, h.To)
		last = h
	})
	if err != nil && !errors.Is(err, client.ErrGone) {
		return err
	}
	if last.Message != "" {
		return fmt.Errorf("%s failed, instance %s is %s: %s", last.Action, id, last.To, last.Message)
	}
	return nil
}

// actionCommand builds a subcommand that posts one compute action and
// optionally waits for it.
func actionCommand(name, usage string, flags []ucli.Flag, body func(c *ucli.Context) (any, int, error)) *ucli.Command {
	return &ucli.Command{
		Name: name, Usage: usage, ArgsUsage: "ID",
		Flags: clientFlags(append([]ucli.Flag{waitFlag}, flags...)...),
		Action: func(c *ucli.Context) error {
			id, err := instanceArg(c)
			if err != nil {
				return err
			}
			b, want, err := body(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			r, err := cl.Action(c.Context, id, b, want)
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

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
