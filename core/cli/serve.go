package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/node"
)

// serveCommand runs a node until SIGINT or SIGTERM.
func serveCommand() *ucli.Command {
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
			n, err := node.Start(ctx, cfg, logger)
			if err != nil {
				return err
			}
			if !cfg.ReconcilerEnabled() {
				// Say so rather than let an operator believe mismatches are
				// being handled.
				logger.Warn("the reconciler is disabled (reconciler { enabled = false }): nothing compares the records with the hypervisors")
			}
			logger.Info("lucid ready", "api", n.URL, "node", cfg.Node, "etcd", n.EtcdURL, "startup", n.Ready.Round(time.Millisecond))
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
