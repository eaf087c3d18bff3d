package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
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
			// For `lucid bench throughput`: the server's CPU profile, from
			// ready to stop (startup is left out: it is not the load).
			&ucli.StringFlag{Name: "cpu-profile", Hidden: true, Usage: "profile CPU from ready to stop into `FILE`"},
		},
		Action: func(c *ucli.Context) error {
			logger, logs, err := newBufferedLogger(c.App.ErrWriter, c.String("log-level"))
			if err != nil {
				return err
			}
			defer logs.Close()
			cfg, err := config.Load(c.String("config"))
			if err != nil {
				return err
			}
			var profile *os.File
			if path := c.String("cpu-profile"); path != "" {
				// Created first, so a bad path fails before anything starts.
				if profile, err = os.Create(path); err != nil {
					return fmt.Errorf("--cpu-profile: %w", err)
				}
				defer profile.Close()
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := node.Start(ctx, cfg, logger)
			if err != nil {
				return err
			}
			if profile != nil {
				// Deferred after the shutdown below, which it covers too.
				if err := pprof.StartCPUProfile(profile); err != nil {
					return errors.Join(fmt.Errorf("--cpu-profile: %w", err), n.Close(context.WithoutCancel(ctx)))
				}
				defer pprof.StopCPUProfile()
			}
			if !cfg.ReconcilerEnabled() {
				// Say so rather than let an operator believe mismatches are
				// being handled.
				logger.Warn("the reconciler is disabled (reconciler { enabled = false }): nothing compares the records with the hypervisors")
			}
			logger.Info("lucid ready", "api", n.URL, "node", cfg.Node, "etcd", n.EtcdURL, "startup", n.Ready.Round(time.Millisecond))
			logs.Flush() // whoever waits for the ready line need not wait for the timer
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
