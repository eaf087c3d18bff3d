// Package cli is Lucid's command line: `lucid serve`, the `lucid server`
// client commands, and `lucid config validate`. main.go calls Run, so the
// whole CLI runs in-process in tests.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/lucid-project/lucid/core/config"
)

// Run executes the command line args (args[0] is the program name),
// writing to stdout and stderr. It returns the error to report; main
// exits non-zero on any.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := &ucli.App{
		Name:      "lucid",
		Usage:     "a compute control plane whose instance states tell the truth",
		Writer:    stdout,
		ErrWriter: stderr,
		// urfave/cli would call os.Exit on errors; Run returns them.
		ExitErrHandler: func(*ucli.Context, error) {},
		Commands: []*ucli.Command{
			serveCommand(ctx),
			serverCommand(),
			{
				Name:  "config",
				Usage: "work with config files",
				Subcommands: []*ucli.Command{{
					Name:  "validate",
					Usage: "check a config file and report every problem with file:line:col",
					Description: "Decodes and checks the file, then loads each policy module (with its settings) and\n" +
						"starts each driver plugin (with its config) and stops them again, so a module that\n" +
						"is not WebAssembly or a driver that rejects its config is caught before deployment.\n" +
						"--offline skips loading and starting.",
					Flags: []ucli.Flag{configFlag(), &ucli.BoolFlag{Name: "offline", Usage: "only decode and check the file"}},
					Action: func(c *ucli.Context) error {
						path := c.String("config")
						cfg, err := config.Load(path)
						if err != nil {
							return err
						}
						if !c.Bool("offline") {
							logger, _ := newLogger(c.App.ErrWriter, "warn")
							comp, err := loadComponents(c.Context, cfg, logger)
							if err != nil {
								return err
							}
							if err := comp.close(c.Context); err != nil {
								return err
							}
						}
						fmt.Fprintf(c.App.Writer, "%s: ok\n", path)
						return nil
					},
				}},
			},
		},
	}
	return app.RunContext(ctx, args)
}

func configFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "config.hcl", Usage: "operator config file", EnvVars: []string{"LUCID_CONFIG"}}
}

func serveCommand(parent context.Context) *ucli.Command {
	return &ucli.Command{
		Name:  "serve",
		Usage: "run a Lucid node: store, drivers, policies, executor and API",
		Flags: []ucli.Flag{
			configFlag(),
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		Action: func(c *ucli.Context) error {
			logger, err := newLogger(c.App.ErrWriter, c.String("log-level"))
			if err != nil {
				return err
			}
			cfg, err := config.Load(c.String("config"))
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := Start(ctx, cfg, logger)
			if err != nil {
				return err
			}
			if cfg.ReconcilerEnabled() || cfg.Policy(config.HookReconcile) != nil {
				// Say so rather than let an operator believe mismatches are
				// being handled.
				logger.Warn("the reconciler is not implemented yet: record/hypervisor mismatches are neither corrected nor flagged; the reconciler block and reconcile policy are accepted and ignored")
			}
			logger.Info("lucid ready", "api", "http://"+n.Addr, "node", cfg.Node, "etcd", n.Store.ClientURL(), "startup", n.Ready.Round(time.Millisecond))
			select {
			case <-ctx.Done():
			case err = <-n.Err():
			}
			logger.Info("lucid stopping")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return errors.Join(err, n.Close(sctx))
		},
	}
}

func serverCommand() *ucli.Command {
	endpoint := &ucli.StringFlag{Name: "endpoint", Aliases: []string{"e"}, Value: "http://127.0.0.1:8774", Usage: "Lucid API", EnvVars: []string{"LUCID_ENDPOINT"}}
	wait := &ucli.BoolFlag{Name: "wait", Usage: "wait until the action ends, printing each status"}
	jsonOut := &ucli.BoolFlag{Name: "json", Usage: "print the API's JSON"}
	return &ucli.Command{
		Name:  "server",
		Usage: "manage instances through the API",
		Subcommands: []*ucli.Command{
			{
				Name: "create", Usage: "create an instance", ArgsUsage: "NAME",
				Flags: []ucli.Flag{endpoint, wait, jsonOut,
					&ucli.StringFlag{Name: "flavor", Required: true, Usage: "flavor id"},
					&ucli.StringFlag{Name: "image", Required: true, Usage: "image id"},
				},
				Action: func(c *ucli.Context) error {
					name := c.Args().First()
					if name == "" {
						return fmt.Errorf("server create: NAME is required")
					}
					cl := client{base: c.String("endpoint")}
					var out struct {
						Server struct {
							ID string `json:"id"`
						} `json:"server"`
					}
					body := map[string]any{"server": map[string]any{"name": name, "flavorRef": c.String("flavor"), "imageRef": c.String("image")}}
					if err := cl.do(c.Context, "POST", "/v2.1/servers", body, &out, http.StatusAccepted); err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, out.Server.ID)
					if c.Bool("wait") {
						return cl.wait(c.Context, c.App.Writer, out.Server.ID)
					}
					return nil
				},
			},
			{
				Name: "show", Usage: "show an instance", ArgsUsage: "ID",
				Flags: []ucli.Flag{endpoint, jsonOut},
				Action: func(c *ucli.Context) error {
					cl := client{base: c.String("endpoint")}
					var out struct {
						Server map[string]any `json:"server"`
					}
					if err := cl.do(c.Context, "GET", "/v2.1/servers/"+c.Args().First(), nil, &out, http.StatusOK); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, out)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					for _, k := range []string{"id", "name", "status", "OS-EXT-STS:vm_state", "OS-EXT-STS:task_state", "OS-EXT-STS:power_state", "OS-EXT-SRV-ATTR:host", "fault", "lucid:transition"} {
						if v, ok := out.Server[k]; ok && v != nil {
							fmt.Fprintf(tw, "%s\t%v\n", k, v)
						}
					}
					return tw.Flush()
				},
			},
			{
				Name: "list", Usage: "list instances",
				Flags: []ucli.Flag{endpoint, jsonOut},
				Action: func(c *ucli.Context) error {
					cl := client{base: c.String("endpoint")}
					var out struct {
						Servers []map[string]any `json:"servers"`
					}
					if err := cl.do(c.Context, "GET", "/v2.1/servers/detail", nil, &out, http.StatusOK); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, out)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tHOST")
					for _, s := range out.Servers {
						fmt.Fprintf(tw, "%v\t%v\t%v\t%v\n", s["id"], s["name"], s["status"], s["OS-EXT-SRV-ATTR:host"])
					}
					return tw.Flush()
				},
			},
			{
				Name: "delete", Usage: "delete an instance", ArgsUsage: "ID",
				Flags: []ucli.Flag{endpoint, wait},
				Action: func(c *ucli.Context) error {
					cl := client{base: c.String("endpoint")}
					id := c.Args().First()
					if err := cl.do(c.Context, "DELETE", "/v2.1/servers/"+id, nil, nil, http.StatusNoContent); err != nil {
						return err
					}
					if c.Bool("wait") {
						return cl.wait(c.Context, c.App.Writer, id)
					}
					return nil
				},
			},
			{
				Name: "history", Usage: "show every status an instance has had, also after deletion", ArgsUsage: "ID",
				Flags: []ucli.Flag{endpoint, jsonOut},
				Action: func(c *ucli.Context) error {
					cl := client{base: c.String("endpoint")}
					var out struct {
						History []map[string]any `json:"history"`
					}
					if err := cl.do(c.Context, "GET", "/v1/instances/"+c.Args().First()+"/history", nil, &out, http.StatusOK); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, out)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "SEQ\tAT\tFROM\tTO\tACTION\tCAUSE\tREQUEST\tMESSAGE")
					for _, h := range out.History {
						fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", h["seq"], h["at"], h["from"], h["to"], h["action"], h["cause"], h["request_id"], valueOr(h["message"], ""))
					}
					return tw.Flush()
				},
			},
		},
	}
}

func valueOr(v any, def string) any {
	if v == nil {
		return def
	}
	return v
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// client is a small OpenStack-compute HTTP client for the CLI.
type client struct {
	base string
}

// APIError is an error response from the API.
type APIError struct {
	Status  int
	Kind    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Kind, e.Message)
}

func (cl client) do(ctx context.Context, method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(cl.base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is lucid serve running?)", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var eb map[string]struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &eb) == nil {
			for k, v := range eb {
				return &APIError{Status: resp.StatusCode, Kind: k, Message: v.Message}
			}
		}
		return &APIError{Status: resp.StatusCode, Kind: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// wait polls an instance until no action is in flight (or it is gone),
// printing each status it sees once.
func (cl client) wait(ctx context.Context, w io.Writer, id string) error {
	last := ""
	for {
		var out struct {
			Server struct {
				Status string         `json:"status"`
				Trans  map[string]any `json:"lucid:transition"`
				Fault  map[string]any `json:"fault"`
			} `json:"server"`
		}
		err := cl.do(ctx, "GET", "/v2.1/servers/"+id, nil, &out, http.StatusOK)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			fmt.Fprintln(w, "DELETED")
			return nil
		}
		if err != nil {
			return err
		}
		if out.Server.Status != last {
			fmt.Fprintln(w, out.Server.Status)
			last = out.Server.Status
		}
		if out.Server.Trans == nil {
			if out.Server.Fault != nil {
				return fmt.Errorf("%s: %v", out.Server.Status, out.Server.Fault["message"])
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
