package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/lucid-project/lucid/core/config"
	coredriver "github.com/lucid-project/lucid/core/driver"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/core/reconcile"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/sdk/driver"
)

// Components are the parts of a node that run operator-supplied code:
// policy modules and driver plugins. `lucid config validate` loads them
// too (Check), so a bad module or a driver that rejects its config is
// caught before deployment, not at start-up.
type Components struct {
	// Validator is the validate policy, nil if none is configured.
	Validator lifecycle.Validator
	// PolicyID names the validate policy in history records:
	// "name@version sha256:<12 hex>".
	PolicyID string
	// Decider is the reconcile policy, nil if none is configured;
	// DeciderID names it like PolicyID.
	Decider   reconcile.Decider
	DeciderID string
	// Modules are the loaded policy modules, for their statistics.
	Modules []*policy.Module
	// Drivers by configured name, and what each reported about itself.
	Drivers map[string]driver.Driver
	Infos   []store.DriverInfo
	closers []func(context.Context) error
}

// Close stops the drivers and unloads the policies.
func (c *Components) Close(ctx context.Context) error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i](ctx))
	}
	c.closers = nil
	return errors.Join(errs...)
}

// Check binds the API's listen address briefly, loads every policy
// module and starts every driver plugin of cfg, then stops them: what
// `lucid config validate` does beyond decoding.
func Check(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	if err := cfg.CheckListen(); err != nil {
		return err
	}
	c, err := Load(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// Load loads the policies and starts every driver. On error what was
// started is stopped, and the error points at the config line
// responsible.
func Load(ctx context.Context, cfg *config.Config, logger *slog.Logger) (_ *Components, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Components{Drivers: map[string]driver.Driver{}}
	defer func() {
		if err != nil {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	var eng *policy.Engine
	for _, hook := range []policy.Hook{policy.HookValidate, policy.HookReconcile} {
		pc := cfg.Policy(string(hook))
		if pc == nil {
			continue
		}
		if eng == nil {
			if eng, err = policy.NewEngine(ctx, policy.EngineConfig{CacheDir: cacheDir(cfg), Logger: logger.With("component", "policy")}); err != nil {
				return nil, err
			}
			c.closers = append(c.closers, eng.Close)
		}
		mod, err := eng.Load(ctx, policy.Config{
			Name: pc.Hook, Hook: hook, Path: pc.Module, Settings: pc.Settings,
			Timeout: pc.Timeout, MemoryLimitMiB: uint32(pc.MemoryMiB), Fallback: policy.Fallback(pc.Fallback),
			MaxCalls: pc.MaxCalls, MaxMemoryMiB: uint32(pc.MaxMemoryMiB), LogLinesPerSecond: pc.LogLinesPerSecond,
		})
		if err != nil {
			if errors.Is(err, policy.ErrSettings) {
				return nil, cfg.Errorf(pc.SettingsRange, "Policy settings rejected", "%v", err)
			}
			return nil, cfg.Errorf(pc.ModuleRange, "Cannot load policy module", "%v", err)
		}
		info := mod.Info()
		id := fmt.Sprintf("%s@%s sha256:%s", info.Name, info.Version, mod.Digest())
		switch hook {
		case policy.HookValidate:
			c.Validator, c.PolicyID = mod, id
		case policy.HookReconcile:
			c.Decider, c.DeciderID = mod, id
		}
		c.Modules = append(c.Modules, mod)
	}

	// Plugin sockets live in a private directory removed at close, so a
	// killed plugin leaves nothing behind in /tmp; directories left by
	// hosts that were killed (and so could not remove theirs) go now.
	if removed, err := coredriver.RemoveStaleSocketDirs(""); err != nil {
		logger.Warn("cannot remove stale plugin socket directories", "err", err)
	} else if len(removed) > 0 {
		logger.Info("removed plugin socket directories of dead hosts", "dirs", removed)
	}
	sockDir, err := coredriver.NewSocketDir("")
	if err != nil {
		return nil, err
	}
	c.closers = append(c.closers, func(context.Context) error { return os.RemoveAll(sockDir) })
	for _, dc := range cfg.Drivers {
		p, err := coredriver.Start(ctx, coredriver.Config{
			Name: dc.Name, Path: dc.Plugin, Checksum: dc.Checksum, Config: dc.Config,
			Env: dc.Env, PassEnv: dc.PassEnv,
			SocketDir: sockDir, Logger: logger.With("component", "driver"),
		})
		if err != nil {
			// Point at the line the error is about: the checksum, the
			// config key the plugin's message names (sdk/driver asks
			// drivers to name it), the config block, or the plugin path.
			rng := dc.PluginRange
			switch {
			case errors.Is(err, coredriver.ErrChecksum):
				rng = dc.ChecksumRange
			case errors.Is(err, coredriver.ErrEnv):
				// The error quotes the names; point at pass_env if it
				// holds one of them, else at env.
				rng = dc.EnvRange
				for _, name := range dc.PassEnv {
					if strings.Contains(err.Error(), strconv.Quote(name)) || rng.Filename == "" {
						rng = dc.PassEnvRange
					}
				}
			case errors.Is(err, coredriver.ErrLaunch) || dc.Body == nil:
			default:
				rng = dc.Body.DefRange
				if r, ok := dc.KeyIn(err.Error()); ok {
					rng = r
				}
			}
			return nil, cfg.Errorf(rng, "Cannot start driver "+dc.Name, "%v", err)
		}
		c.closers = append(c.closers, p.Close)
		c.Drivers[dc.Name] = p
		info, _ := p.Info(ctx)
		c.Infos = append(c.Infos, store.DriverInfo{Name: dc.Name, Version: info.Version, Capabilities: info.Capabilities})
	}
	sort.Slice(c.Infos, func(i, j int) bool { return c.Infos[i].Name < c.Infos[j].Name })
	return c, nil
}
