package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/lucid-project/lucid/internal/throughput"
)

// benchThroughputCommand measures the whole path's status changes per
// second against raw etcd in the same run, and what each costs (see
// internal/throughput).
func benchThroughputCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "throughput",
		Usage: "measure status changes per second through lucid serve against raw etcd, and what each costs",
		Description: "Runs a raw 2-key CAS transaction baseline on an embedded etcd configured like the server's,\n" +
			"and stop/start loops through the HTTP API of `lucid serve` (this executable, in its own process,\n" +
			"default config with the fake driver at zero delay and authentication off) with --clients clients,\n" +
			"in --rounds alternating slices, so that both see the machine at the same time; then etcd\n" +
			"operations and CPU per status change, split by component from the server's CPU\n" +
			"profile; create → ACTIVE latency with --clients concurrent creators making --instances instances;\n" +
			"and listing them through the API against a raw ranged read. It prints the report (--json: as JSON).",
		Flags: []ucli.Flag{
			&ucli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long the raw phase and the stop/start phase each run in all (at least 100ms per round)"},
			&ucli.IntFlag{Name: "rounds", Value: 5, Usage: "how many alternating slices of raw and stop/start the two phases are cut into"},
			&ucli.IntFlag{Name: "clients", Value: 16, Usage: "concurrent clients (and raw goroutines, and creators)"},
			&ucli.IntFlag{Name: "instances", Value: 1000, Usage: "instances created (latency) and then listed"},
			&ucli.IntFlag{Name: "per-client", Value: 2, Usage: "instances each stop/start client owns"},
			&ucli.StringFlag{Name: "client", Value: "wire", Usage: "the load's HTTP client: wire (a minimal HTTP/1.1 client, one connection per client, as load tools such as wrk use, so the load generator takes less of the machine the server shares) or go (Go's net/http)"},
			&ucli.StringFlag{Name: "wait", Value: "prefer", Usage: "how a stop/start client waits for its action's end: prefer (Prefer: wait on the action) or long-poll (202, then GET ?wait=settled)"},
			&ucli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&ucli.StringFlag{Name: "plugin", Value: "bin/lucid-driver-fake", Usage: "the fake driver plugin"},
			&ucli.StringFlag{Name: "policy", Value: "bin/policies/transitions.wasm", Usage: "the validate policy module"},
			&ucli.StringFlag{Name: "reconcile-policy", Value: "bin/policies/reconcile.wasm", Usage: "the reconcile policy module"},
			&ucli.StringFlag{Name: "dir", Usage: "directory for the servers' configs, data, logs and profile (default: a temporary one, removed)"},
			&ucli.StringFlag{Name: "cache-dir", Usage: "the servers' wasm compile cache (default: the server's own default)"},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("bench throughput takes no arguments, got %q", c.Args().First())
			}
			for _, f := range []string{"rounds", "clients", "instances", "per-client"} {
				if n := c.Int(f); n < 1 {
					return fmt.Errorf("--%s %d: want at least 1", f, n)
				}
			}
			if d, min := c.Duration("duration"), 100*time.Millisecond*time.Duration(c.Int("rounds")); d < min {
				return fmt.Errorf("--duration %v: want at least %v (100ms for each of --rounds %d)", d, min, c.Int("rounds"))
			}
			if w := c.String("wait"); w != throughput.WaitPrefer && w != throughput.WaitLongPoll {
				return fmt.Errorf("--wait %q: want %s or %s", w, throughput.WaitPrefer, throughput.WaitLongPoll)
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			progress := c.App.ErrWriter
			rep, err := throughput.Run(ctx, throughput.Config{
				Lucid: exe, Plugin: c.String("plugin"), Policy: c.String("policy"), ReconcilePolicy: c.String("reconcile-policy"),
				Dir: c.String("dir"), CacheDir: c.String("cache-dir"),
				Duration: c.Duration("duration"), Rounds: c.Int("rounds"), Clients: c.Int("clients"), PerClient: c.Int("per-client"), Instances: c.Int("instances"), Wait: c.String("wait"), Client: c.String("client"),
				Out: progress,
			})
			if rep != nil {
				if c.Bool("json") {
					if jerr := rep.JSON(c.App.Writer); jerr != nil {
						return jerr
					}
				} else {
					rep.Print(c.App.Writer)
				}
			}
			return err
		},
	}
}
