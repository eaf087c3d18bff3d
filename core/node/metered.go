package node

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lucid-project/lucid/core/metrics"
	"github.com/lucid-project/lucid/sdk/driver"
)

// exiter is a driver host that counts its plugin's exits.
type exiter interface{ Exits() uint64 }

// subscriber follows a driver's events across plugin restarts.
type subscriber interface {
	Subscribe(ctx context.Context) <-chan driver.Event
}

// meteredDriver counts and times d's calls into s, under the driver's configured
// name, and exports its plugin restarts if the host counts them. The
// result implements the optional interfaces (answering ErrUnsupported
// where d does not) and forwards event subscriptions.
func meteredDriver(name string, d driver.Driver, s *metrics.Set) driver.Driver {
	if s == nil {
		return d
	}
	if e, ok := d.(exiter); ok {
		s.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lucid_driver_restarts_total",
			Help: "Times the driver's plugin process exited and was restarted.", ConstLabels: prometheus.Labels{"driver": name}},
			func() float64 { return float64(e.Exits()) }))
	}
	return &countedDriver{name: name, d: d, s: s}
}

type countedDriver struct {
	name string
	d    driver.Driver
	s    *metrics.Set
}

var (
	_ driver.Rebuilder = (*countedDriver)(nil)
	_ driver.Resizer   = (*countedDriver)(nil)
	_ driver.Forwarder = (*countedDriver)(nil)
)

func (c *countedDriver) count(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case errors.Is(err, driver.ErrUnavailable):
		result = "unavailable"
	case err != nil:
		result = "error"
	}
	c.s.DriverCall(c.name, op, result, time.Since(start))
}

// Forwards marks the wrapper as passing calls on: capabilities come from
// Info, not from the wrapper's type.
func (c *countedDriver) Forwards() {}

func (c *countedDriver) Info(ctx context.Context) (driver.Info, error) { return c.d.Info(ctx) }

func (c *countedDriver) Configure(ctx context.Context, config []byte) error {
	start := time.Now()
	err := c.d.Configure(ctx, config)
	c.count("configure", start, err)
	return err
}

func (c *countedDriver) Spawn(ctx context.Context, spec driver.Spec) error {
	start := time.Now()
	err := c.d.Spawn(ctx, spec)
	c.count("spawn", start, err)
	return err
}

func (c *countedDriver) Destroy(ctx context.Context, id string) error {
	start := time.Now()
	err := c.d.Destroy(ctx, id)
	c.count("destroy", start, err)
	return err
}

func (c *countedDriver) Inspect(ctx context.Context, id string) (driver.Instance, error) {
	start := time.Now()
	in, err := c.d.Inspect(ctx, id)
	c.count("inspect", start, err)
	return in, err
}

func (c *countedDriver) List(ctx context.Context) ([]driver.Instance, error) {
	start := time.Now()
	ins, err := c.d.List(ctx)
	c.count("list", start, err)
	return ins, err
}

func (c *countedDriver) PowerOff(ctx context.Context, id string) error {
	start := time.Now()
	err := c.d.PowerOff(ctx, id)
	c.count("power_off", start, err)
	return err
}

func (c *countedDriver) PowerOn(ctx context.Context, id string) error {
	start := time.Now()
	err := c.d.PowerOn(ctx, id)
	c.count("power_on", start, err)
	return err
}

func (c *countedDriver) Reboot(ctx context.Context, id string, hard bool) error {
	start := time.Now()
	err := c.d.Reboot(ctx, id, hard)
	c.count("reboot", start, err)
	return err
}

func (c *countedDriver) Rebuild(ctx context.Context, id string, image driver.Image) error {
	r, ok := c.d.(driver.Rebuilder)
	if !ok {
		return driver.ErrUnsupported
	}
	start := time.Now()
	err := r.Rebuild(ctx, id, image)
	c.count("rebuild", start, err)
	return err
}

func (c *countedDriver) Resize(ctx context.Context, id string, step driver.ResizeStep, flavor driver.Flavor) error {
	r, ok := c.d.(driver.Resizer)
	if !ok {
		return driver.ErrUnsupported
	}
	start := time.Now()
	err := r.Resize(ctx, id, step, flavor)
	c.count("resize_"+string(step), start, err)
	return err
}

func (c *countedDriver) ConfirmResize(ctx context.Context, id string) error {
	r, ok := c.d.(driver.Resizer)
	if !ok {
		return driver.ErrUnsupported
	}
	start := time.Now()
	err := r.ConfirmResize(ctx, id)
	c.count("confirm_resize", start, err)
	return err
}

func (c *countedDriver) RevertResize(ctx context.Context, id string, old driver.Flavor) error {
	r, ok := c.d.(driver.Resizer)
	if !ok {
		return driver.ErrUnsupported
	}
	start := time.Now()
	err := r.RevertResize(ctx, id, old)
	c.count("revert_resize", start, err)
	return err
}

// Subscribe forwards the host's event subscription; a driver without one
// gives a channel that closes when ctx ends.
func (c *countedDriver) Subscribe(ctx context.Context) <-chan driver.Event {
	if s, ok := c.d.(subscriber); ok {
		return s.Subscribe(ctx)
	}
	ch := make(chan driver.Event)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch
}

// instrument creates the node's metrics and routes the components through
// them: policy calls are timed, driver calls counted and timed, the
// modules' own and the store's commit counters exported.
func (n *Node) instrument(c *Components) {
	n.Metrics = metrics.New()
	if c.Validator != nil {
		c.Validator = metrics.TimeValidator(c.Validator, n.Metrics)
	}
	if c.Decider != nil {
		c.Decider = metrics.TimeDecider(c.Decider, n.Metrics)
	}
	for _, m := range c.Modules {
		if err := n.Metrics.ModuleStats(m); err != nil {
			n.logger.Warn("cannot export a policy module's statistics", "err", err)
		}
	}
	for name, d := range c.Drivers {
		c.Drivers[name] = meteredDriver(name, d, n.Metrics)
	}
	st := n.Store
	if err := n.Metrics.CommitStats(func() (uint64, uint64) { cs := st.CommitStats(); return cs.Requests, cs.Commits }); err != nil {
		n.logger.Warn("cannot export the store's commit statistics", "err", err)
	}
}

// metricsHandler serves the node's metrics, and the embedded etcd
// member's (registered with Prometheus' default registry) when etcd runs
// in this process.
func (n *Node) metricsHandler() http.Handler {
	if n.EtcdURL != "" {
		return n.Metrics.Handler(prometheus.DefaultGatherer)
	}
	return n.Metrics.Handler()
}
