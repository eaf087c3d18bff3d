package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/lucid-project/lucid/core/api"
	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/driver"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/core/store"
)

// Node is a running Lucid node: store, drivers, policies, executor and
// API, started in that order and stopped in reverse by Close.
type Node struct {
	Config *config.Config
	Store  *store.Store
	// Addr is the API's listening address.
	Addr string
	// Ready is how long start-up took, from Start to API ready.
	Ready time.Duration

	logger  *slog.Logger
	closers []func(context.Context) error
	srvErr  chan error
}

// Start brings a node up from a loaded config. On error everything
// started so far is stopped again; errors about the config point at the
// offending HCL line.
func Start(ctx context.Context, cfg *config.Config, logger *slog.Logger) (_ *Node, err error) {
	t0 := time.Now()
	n := &Node{Config: cfg, logger: logger, srvErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.Close(context.Background())
		}
	}()

	sc := store.Config{Endpoints: cfg.Store.Endpoints, Prefix: cfg.Store.Prefix}
	if e := cfg.Store.Embedded; e != nil {
		sc.Embedded = &store.EmbeddedConfig{DataDir: e.DataDir, ClientURL: e.ClientURL, FastElection: true}
	}
	st, err := store.Open(ctx, sc)
	if err != nil {
		return nil, err
	}
	n.Store = st
	n.closers = append(n.closers, func(context.Context) error { return st.Close() })

	comp, err := loadComponents(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, comp.close)
	validator, drivers, names := comp.validator, comp.drivers, comp.names

	reg, err := st.Register(ctx, store.NodeInfo{Name: cfg.Node, Drivers: names, API: cfg.API.Listen, Started: time.Now().UTC()}, 10*time.Second)
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, reg.Close)

	// The first configured driver receives new instances; scheduling
	// across drivers and nodes comes with multi-node support.
	svc := lifecycle.NewService(lifecycle.Config{Store: st, Validator: validator, Node: cfg.Node, Driver: cfg.Drivers[0].Name, Logger: logger})
	ex := lifecycle.NewExecutor(lifecycle.ExecutorConfig{Service: svc, Store: st, Claims: reg, Node: cfg.Node, Drivers: drivers, Logger: logger.With("component", "executor")})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	exDone := make(chan struct{})
	go func() {
		defer close(exDone)
		ex.Run(rctx)
	}()
	n.closers = append(n.closers, func(context.Context) error { cancel(); <-exDone; return nil })

	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, cfg.Errorf(cfg.API.ListenRange, "Cannot listen", "%v", err)
	}
	n.Addr = ln.Addr().String()
	srv := &http.Server{Handler: api.New(svc, logger.With("component", "api")), ReadHeaderTimeout: 10 * time.Second}
	go func() { n.srvErr <- srv.Serve(ln) }()
	n.closers = append(n.closers, srv.Shutdown)
	n.Ready = time.Since(t0)
	return n, nil
}

// Close stops everything Start started, in reverse order.
func (n *Node) Close(ctx context.Context) error {
	var errs []error
	for i := len(n.closers) - 1; i >= 0; i-- {
		if err := n.closers[i](ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	n.closers = nil
	return errors.Join(errs...)
}

// Err reports the API server failing after start.
func (n *Node) Err() <-chan error { return n.srvErr }

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// components are the parts of a node that run operator-supplied code:
// policy modules and driver plugins. `lucid config validate` loads them
// too, so a bad module or a driver that rejects its config is caught
// before deployment, not at start-up.
type components struct {
	validator lifecycle.Validator
	drivers   map[string]lifecycle.Hypervisor
	names     []string
	closers   []func(context.Context) error
}

func (c *components) close(ctx context.Context) error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i](ctx))
	}
	c.closers = nil
	return errors.Join(errs...)
}

// loadComponents loads the validate policy and starts every driver. On
// error what was started is stopped, and the error points at the config
// line responsible.
func loadComponents(ctx context.Context, cfg *config.Config, logger *slog.Logger) (_ *components, err error) {
	c := &components{drivers: map[string]lifecycle.Hypervisor{}}
	defer func() {
		if err != nil {
			c.close(context.WithoutCancel(ctx))
		}
	}()
	if pc := cfg.Policy(config.HookValidate); pc != nil {
		cacheDir := ""
		if ucd, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(ucd, "lucid", "wasm")
		}
		eng, err := policy.NewEngine(ctx, policy.EngineConfig{CacheDir: cacheDir, Logger: logger.With("component", "policy")})
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, eng.Close)
		mod, err := eng.Load(ctx, policy.Config{
			Name: pc.Hook, Hook: policy.HookValidate, Path: pc.Module, Settings: pc.Settings,
			Timeout: pc.Timeout, MemoryLimitMiB: uint32(pc.MemoryMiB),
		})
		if err != nil {
			if errors.Is(err, policy.ErrSettings) {
				return nil, cfg.Errorf(pc.SettingsRange, "Policy settings rejected", "%v", err)
			}
			return nil, cfg.Errorf(pc.ModuleRange, "Cannot load policy module", "%v", err)
		}
		c.validator = mod
	}

	// Plugin sockets live in a private directory removed at close, so a
	// killed plugin leaves nothing behind in /tmp.
	sockDir, err := os.MkdirTemp("", "lucid-plugins-")
	if err != nil {
		return nil, err
	}
	c.closers = append(c.closers, func(context.Context) error { return os.RemoveAll(sockDir) })
	for _, dc := range cfg.Drivers {
		p, err := driver.Start(ctx, driver.Config{
			Name: dc.Name, Path: dc.Plugin, Checksum: dc.Checksum, Config: dc.Config,
			SocketDir: sockDir, Logger: logger.With("component", "driver"),
		})
		if err != nil {
			// Point at the line the error is about: the checksum, the
			// config key the plugin's message names (sdk/driver asks
			// drivers to name it), the config block, or the plugin path.
			rng := dc.PluginRange
			switch {
			case errors.Is(err, driver.ErrChecksum):
				rng = dc.ChecksumRange
			case errors.Is(err, driver.ErrLaunch) || dc.Body == nil:
			default:
				rng = dc.Body.DefRange
				if r, ok := dc.KeyIn(err.Error()); ok {
					rng = r
				}
			}
			return nil, cfg.Errorf(rng, "Cannot start driver "+dc.Name, "%v", err)
		}
		c.closers = append(c.closers, p.Close)
		c.drivers[dc.Name] = p
		c.names = append(c.names, dc.Name)
	}
	sort.Strings(c.names)
	return c, nil
}
