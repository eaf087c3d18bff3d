// Package node is Lucid's composition root: it starts a node from a
// loaded configuration (store, driver plugins, policies, write door,
// executor, API) and stops it again. It is the only package that knows
// every other; commands and tests start nodes through it.
package node

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lucid-project/lucid/core/api"
	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/executor"
	"github.com/lucid-project/lucid/core/feed"
	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/metrics"
	"github.com/lucid-project/lucid/core/reconcile"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/core/store/embedded"
)

// DefaultLeaseTTL is how long a node's registration outlives it when the
// configuration says nothing: after it, the node's transitions are
// orphans.
const DefaultLeaseTTL = 10 * time.Second

// Node is a running Lucid node. Start brings it up; Close stops it.
type Node struct {
	Config *config.Config
	Store  *store.Store
	// Addr is the API's listening address.
	Addr string
	// URL is how clients reach the API: http://Addr, or https://Addr
	// when the api block has tls.
	URL string
	// EtcdURL is the embedded etcd member's client URL, "" for a cluster.
	EtcdURL string
	// Ready is how long start-up took, from Start to API ready.
	Ready time.Duration
	// Reconciler is the node's reconciler, nil when it is disabled.
	Reconciler *reconcile.Reconciler
	// Metrics are the node's Prometheus metrics, served at /metrics.
	Metrics *metrics.Set
	// Feed answers the API's long-polls (GET /v1/instances/{id}?wait=…)
	// from the executor's watch, the node's one watch of the instances.
	Feed *feed.Feed

	logger  *slog.Logger
	closers []func(context.Context) error
	srvErr  chan error
}

// Start brings a node up from a loaded config: store, policies, drivers,
// registration, executor, API, in that order. On error everything started
// so far is stopped again; errors about the config point at the offending
// HCL line.
func Start(ctx context.Context, cfg *config.Config, logger *slog.Logger) (_ *Node, err error) {
	t0 := time.Now()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{Config: cfg, logger: logger, srvErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.Close(context.WithoutCancel(ctx))
		}
	}()

	if err := n.openStore(ctx); err != nil {
		return nil, err
	}
	comp, err := Load(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, comp.Close)
	n.instrument(comp)

	reg, err := n.Store.Register(ctx, store.NodeInfo{Name: cfg.Node, Drivers: comp.Infos, API: cfg.API.Listen, Started: time.Now().UTC()}, leaseTTL(cfg))
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, reg.Close)

	// Usage counters must agree with the records before anything
	// changes them (once per store; see store.CountUsage).
	if err := n.Store.CountUsage(ctx); err != nil {
		return nil, err
	}
	ident, err := n.startIdentity(ctx)
	if err != nil {
		return nil, err
	}
	rec := lifecycle.NewRecorder(lifecycle.RecorderConfig{Store: n.Store, Validator: comp.Validator, Policy: comp.PolicyID,
		Quotas: quotas{cfg}, Metrics: n.Metrics, Logger: logger.With("component", "lifecycle")})
	// One watch of the instances per node, the executor's: it feeds the
	// long-polls (core/feed) and the node's View, from which Begin takes
	// its first attempt's record.
	view := store.NewView(0)
	fd := feed.New(n.Store, view, logger.With("component", "feed"))
	n.Feed = fd
	n.closers = append(n.closers, func(context.Context) error { fd.Close(); return nil })
	// The first configured driver receives new instances; scheduling
	// across drivers and nodes is not built yet.
	ex := executor.New(executor.Config{Store: n.Store, Recorder: rec, Node: cfg.Node, Drivers: comp.Drivers,
		StepTimeout: stepTimeouts(cfg), Logger: logger.With("component", "executor"), Observer: fd})
	// What this node's API begins, its executor starts at once (Hand);
	// the watch remains how every other change reaches it.
	svc := lifecycle.NewService(lifecycle.Config{Store: n.Store, View: view, Handoff: ex, Recorder: rec, Catalog: catalog(cfg),
		Node: cfg.Node, Driver: cfg.Drivers[0].Name, Logger: logger.With("component", "lifecycle")})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	exDone := make(chan struct{})
	go func() {
		defer close(exDone)
		ex.Run(rctx)
	}()
	n.closers = append(n.closers, func(context.Context) error { cancel(); <-exDone; return nil })

	if cfg.ReconcilerEnabled() {
		n.Reconciler = reconcile.New(reconcile.Config{
			Store: n.Store, View: view, Recorder: rec, Starter: svc, Unmanaged: reg, Node: cfg.Node, Drivers: comp.Drivers,
			Policy: comp.Decider, PolicyID: comp.DeciderID, Interval: cfg.Reconciler.Interval, LeaseTTL: leaseTTL(cfg),
			StepTimeout: stepTimeouts(cfg), Logger: logger.With("component", "reconcile"), Metrics: n.Metrics,
		})
		if comp.Decider == nil {
			logger.Warn("the reconciler is enabled without a reconcile policy: it only flags what it finds (observe-only); configure policy \"reconcile\" to let it correct")
		}
		rcctx, rccancel := context.WithCancel(context.WithoutCancel(ctx))
		rcDone := make(chan struct{})
		go func() {
			defer close(rcDone)
			n.Reconciler.Run(rcctx)
		}()
		n.closers = append(n.closers, func(context.Context) error { rccancel(); <-rcDone; return nil })
	}

	ln, url, err := listen(cfg.API)
	if err != nil {
		return nil, cfg.Errorf(cfg.API.ListenRange, "Cannot listen", "%v", err)
	}
	n.Addr, n.URL = ln.Addr().String(), url
	opts := api.Options{Logger: logger.With("component", "api"), Quotas: quotas{cfg}, MetricsPublic: cfg.MetricsPublic(),
		Project: cfg.Defaults.ProjectID, User: cfg.Defaults.UserID, MaxLimit: cfg.API.MaxLimit, CatalogTime: t0,
		Metrics: n.Metrics, MetricsHandler: n.metricsHandler(), Feed: fd}
	if rl := cfg.API.RateLimit; rl != nil {
		opts.RateLimit = api.RateLimit{PerSecond: rl.RequestsPerSecond, Burst: rl.Burst}
		if d := rl.MaxDelay; d != nil {
			opts.RateLimit.MaxDelay = *d
			if *d == 0 {
				opts.RateLimit.MaxDelay = -1 // the API's zero is its default; holding nothing is negative
			}
		}
	}
	if ident != nil {
		// An interface holding a nil *Service would not be nil.
		opts.Auth = ident
		if err := n.bootstrapAdmin(ctx, ident); err != nil {
			ln.Close()
			return nil, err
		}
	}
	handler := api.New(svc, opts)
	srv := newServer(cfg.API, handler, logger.With("component", "api"))
	// Shutdown waits for requests in flight: end the long-polls first.
	srv.RegisterOnShutdown(fd.Close)
	go func() { n.srvErr <- srv.Serve(ln) }()
	n.closers = append(n.closers, srv.Shutdown)
	n.Ready = time.Since(t0)
	return n, nil
}

// openStore starts the embedded member or connects to the cluster, then
// starts the store's maintenance (history retention everywhere; on an
// embedded member also compaction, defragmentation and NOSPACE recovery).
func (n *Node) openStore(ctx context.Context) error {
	cfg := n.Config
	var mc store.MaintainerConfig
	if e := cfg.Store.Embedded; e != nil {
		revs := int64(e.CompactionRevisions)
		if revs == 0 {
			revs = embedded.DefaultCompactionRevisions
		}
		ec := embedded.Config{DataDir: e.DataDir, ClientURL: e.ClientURL, FastElection: true,
			QuotaBytes: int64(e.QuotaMiB) << 20, CompactionRevisions: revs}
		if t := cfg.Store.TLS; t != nil {
			ec.TLS = &embedded.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
		}
		m, err := embedded.Start(ctx, ec)
		if err != nil {
			rng := e.DataRange
			if e.ClientURL != "" {
				rng = e.ClientURLRange
			}
			return cfg.Errorf(rng, "Cannot start the embedded etcd member", "%v", err)
		}
		n.closers = append(n.closers, func(context.Context) error { m.Close(); return nil })
		n.EtcdURL = m.ClientURL()
		n.Store = store.New(m.Client(), cfg.Store.Prefix).WithKV(m.KV())
		mc = store.MaintainerConfig{CompactRevisions: revs, Defragmenter: m, DisarmNoSpace: true}
	} else {
		sc := store.Config{Endpoints: cfg.Store.Endpoints, Prefix: cfg.Store.Prefix}
		if t := cfg.Store.TLS; t != nil {
			tc, err := store.ClientTLS(t.CAFile, t.CertFile, t.KeyFile)
			if err != nil {
				return cfg.Errorf(t.DefRange, "Invalid store TLS", "%v", err)
			}
			sc.TLS = tc
		}
		st, err := store.Open(ctx, sc)
		if err != nil {
			return cfg.Errorf(cfg.Store.EndpointsRange, "Cannot reach the store", "%v", err)
		}
		n.Store = st
	}
	n.closers = append(n.closers, func(context.Context) error { return n.Store.Close() })
	mc.Retention = store.Retention{MaxRecords: cfg.History.MaxRecords, MaxAge: cfg.History.MaxAge, DeletedTTL: cfg.History.DeletedTTL}
	mc.Logger = n.logger.With("component", "store")
	mt := store.NewMaintainer(n.Store, mc)
	// One round now: a store that filled up is reclaimed before this
	// node registers (etcd refuses the lease while it is full).
	mt.Round(ctx)
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		mt.Run(mctx)
	}()
	n.closers = append(n.closers, func(context.Context) error { cancel(); <-done; return nil })
	return nil
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

func leaseTTL(cfg *config.Config) time.Duration {
	if cfg.LeaseTTL > 0 {
		return cfg.LeaseTTL
	}
	return DefaultLeaseTTL
}

func stepTimeouts(cfg *config.Config) func(instance.Action) time.Duration {
	return func(a instance.Action) time.Duration { return cfg.StepTimeout(string(a)) }
}

// catalog turns the operator's flavor and image blocks into what the
// lifecycle service resolves requests against.
func catalog(cfg *config.Config) *lifecycle.Catalog {
	c := &lifecycle.Catalog{}
	for _, f := range cfg.Flavors {
		c.Flavors = append(c.Flavors, instance.Flavor{ID: f.ID, Name: f.Name, VCPUs: f.VCPUs, RAMMB: f.RAMMB, DiskGB: f.DiskGB})
	}
	for _, i := range cfg.Images {
		c.Images = append(c.Images, lifecycle.CatalogImage{
			Image:    instance.Image{ID: i.ID, Name: i.Name, Source: i.Source, DiskFormat: i.DiskFormat},
			MinRAMMB: i.MinRAMMB, MinDiskGB: i.MinDiskGB,
		})
	}
	return c
}

// cacheDir is where compiled policy code is kept between runs.
func cacheDir(cfg *config.Config) string {
	if cfg.CacheDir != "" {
		return cfg.CacheDir
	}
	if ucd, err := os.UserCacheDir(); err == nil {
		return filepath.Join(ucd, "lucid", "wasm")
	}
	return ""
}
