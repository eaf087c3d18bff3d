package cli

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/lucid-project/lucid/internal/soak"
)

// soakDeletedTTL keeps a deleted instance's history half a minute: long
// enough that retention removes it while the load runs.
const soakDeletedTTL = 30 * time.Second

// benchSoakCommand runs the endurance run: `lucid serve` as a subprocess
// under a steady load of status changes, checked for anything that grows
// or rots (see internal/soak). It exits non-zero with the failed checks.
func benchSoakCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "soak",
		Usage: "run lucid serve under a long load of status changes and check that nothing grows or rots",
		Description: "Starts `lucid serve` (this executable) as a subprocess with a config of its own (embedded etcd\n" +
			"with a small quota, the fake driver without delays, the validate policy), drives --changes status\n" +
			"changes through the API with --workers clients (stop and start on a pool of instances, now and\n" +
			"then a delete and a create), samples the server every second and checks: no call that should\n" +
			"pass failed, etcd's database stayed bounded, the resident memory of lucid serve and of the plugin\n" +
			"stayed flat after warm-up, and throughput held: a straight line fitted to the rate after warm-up (a\n" +
			"tenth of the run, at most two minutes) ends at --min-throughput of its start or more. It prints the\n" +
			"curve and a summary, and keeps --dir (config, data, serve.log) when given or when a check failed.",
		Flags: []ucli.Flag{
			&ucli.Int64Flag{Name: "changes", Value: 200_000, Usage: "status changes to drive"},
			&ucli.IntFlag{Name: "workers", Value: 16, Usage: "clients driving them at once"},
			&ucli.IntFlag{Name: "pool", Usage: "instances the workers share (default 4 per worker)"},
			&ucli.IntFlag{Name: "quota-mib", Value: 64, Usage: "etcd's quota-backend-bytes, in MiB"},
			&ucli.IntFlag{Name: "max-records", Value: 100, Usage: "history max_records"},
			&ucli.DurationFlag{Name: "deleted-ttl", Value: soakDeletedTTL, Usage: "history deleted_ttl"},
			&ucli.IntFlag{Name: "compaction-revisions", Usage: "etcd compaction_revisions (default: the server's)"},
			&ucli.Float64Flag{Name: "min-throughput", Value: 0.9, Usage: "the share of its start the rate's trend must end at"},
			&ucli.DurationFlag{Name: "policy-timeout", Usage: "the validate policy's timeout (default: the server's, 100ms)"},
			&ucli.StringFlag{Name: "plugin", Value: "bin/lucid-driver-fake", Usage: "the fake driver plugin"},
			&ucli.StringFlag{Name: "policy", Value: "bin/policies/transitions.wasm", Usage: "the validate policy module"},
			&ucli.StringFlag{Name: "dir", Usage: "directory for the server's config, data and log (default: a temporary one)"},
			&ucli.StringFlag{Name: "cache-dir", Usage: "the server's wasm compile cache (default: in --dir)"},
		},
		Action: func(c *ucli.Context) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			// Interrupted, the run stops its load and still prints what
			// it measured, then stops the server.
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err = soak.Run(ctx, soak.Config{
				Lucid: exe, Plugin: c.String("plugin"), Policy: c.String("policy"),
				Dir: c.String("dir"), CacheDir: c.String("cache-dir"),
				Changes: c.Int64("changes"), Workers: c.Int("workers"), Pool: c.Int("pool"),
				QuotaMiB: c.Int("quota-mib"), MaxRecords: c.Int("max-records"), DeletedTTL: c.Duration("deleted-ttl"),
				CompactionRevisions: c.Int("compaction-revisions"), PolicyTimeout: c.Duration("policy-timeout"),
				MinThroughput: c.Float64("min-throughput"), Out: c.App.Writer,
			})
			return err
		},
	}
}
