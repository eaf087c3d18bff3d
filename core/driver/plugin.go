package driver

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lucid-project/lucid/sdk/driver"
)

// Restart backoff: the first restart waits minBackoff, each further
// consecutive failure doubles it up to maxBackoff. A process that stayed up
// for stableAfter counts as healthy, and the next crash starts over.
const (
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 10 * time.Second
	stableAfter   = 30 * time.Second
	restartBudget = 30 * time.Second // for one relaunch: handshake, Info, Configure
)

// Plugin is a running driver plugin, kept alive by a supervisor goroutine.
// It implements the sdk driver.Driver interface; all methods are safe for
// concurrent use. Errors from calls are *CallError values wrapping the
// sdk sentinels, context errors, ErrPluginExited or ErrClosed.
//
// Plugin also implements driver.Rebuilder, driver.Resizer and
// driver.EventSource, whatever the plugin serves: it is a
// driver.Forwarder. Capabilities (and Info) say what the plugin serves; a
// call the plugin lacks fails at once with driver.ErrUnsupported, without
// reaching the plugin.
type Plugin struct {
	name   string
	log    *slog.Logger
	hclog  hclog.Logger
	launch Config  // Path, Checksum, SocketDir: fixed after Start
	fork   *forker // starts every process of this plugin (see forker)

	mu        sync.Mutex
	cur       *proc // nil while the process is down or after Close
	info      driver.Info
	config    []byte        // latest successful Configure; re-applied on restart
	lastErr   error         // why the latest relaunch failed; nil once one succeeds
	restarted chan struct{} // closed (and replaced) when a restarted process takes over
	closed    bool

	stopped context.Context    // done once Close was called
	stop    context.CancelFunc // ends the supervisor and the subscriptions
	done    chan struct{}      // closed when the supervisor and subscriptions have returned
	subs    sync.WaitGroup     // Subscribe goroutines
	dropped atomic.Uint64      // events Subscribe dropped for full buffers
	exits   atomic.Uint64      // times the plugin process exited while in use
}

var (
	_ driver.Driver      = (*Plugin)(nil)
	_ driver.Forwarder   = (*Plugin)(nil)
	_ driver.Rebuilder   = (*Plugin)(nil)
	_ driver.Resizer     = (*Plugin)(nil)
	_ driver.EventSource = (*Plugin)(nil)
)

// Start launches the plugin, handshakes, and calls Info and Configure with
// cfg.Config, then starts the supervisor that restarts the plugin if it
// dies. ctx bounds the start only, not the plugin's life.
//
// A missing or non-executable path or a failed handshake returns an error
// wrapping ErrLaunch; a checksum mismatch wraps ErrChecksum; a refused
// configuration wraps sdk driver.ErrInvalidConfig; an environment variable
// the plugin protocol reserves wraps ErrEnv. Every error names the
// driver and the path, and nothing is left running. The caller must Close
// the returned Plugin.
func Start(ctx context.Context, cfg Config) (*Plugin, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("driver", cfg.Name)
	p := &Plugin{
		name:      cfg.Name,
		log:       log,
		hclog:     newHCLogger(log),
		launch:    cfg,
		fork:      newForker(),
		config:    slices.Clone(cfg.Config),
		restarted: make(chan struct{}),
		done:      make(chan struct{}),
	}
	p.launch.Config, p.launch.Logger = nil, nil
	p.launch.Env, p.launch.PassEnv = maps.Clone(cfg.Env), slices.Clone(cfg.PassEnv)
	if err := checkEnv(p.launch); err != nil {
		p.fork.close()
		return nil, fmt.Errorf("driver %q: %w", cfg.Name, err)
	}

	pr, err := launch(ctx, p.launch, p.config, p.fork, p.hclog, p.log)
	if err != nil {
		p.fork.close()
		return nil, fmt.Errorf("driver %q: %w", cfg.Name, err)
	}
	p.cur, p.info = pr, pr.info
	log.Info("driver plugin started", "path", cfg.Path, "pid", pr.pid, "version", pr.info.Version, "capabilities", pr.info.Capabilities)

	p.stopped, p.stop = context.WithCancel(context.Background())
	go p.supervise(p.stopped, pr)
	return p, nil
}

// Info returns the driver's Info as reported at start (refreshed after a
// restart). It does not call the plugin and never fails; ctx is unused.
// Its Capabilities are those the plugin's Serve reported: declared plus
// implemented optional interfaces, sorted.
func (p *Plugin) Info(context.Context) (driver.Info, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info, nil
}

// Capabilities returns the plugin's capabilities (Info's, sorted), e.g.
// to publish with the node's registration or to refuse an action the
// driver cannot do before accepting it. The result is a copy.
func (p *Plugin) Capabilities() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.info.Capabilities)
}

// Forwards marks Plugin as a driver.Forwarder.
func (p *Plugin) Forwards() {}

// Exits is how many times the plugin process exited while in use (each
// exit is followed by a restart with backoff).
func (p *Plugin) Exits() uint64 { return p.exits.Load() }

// Close stops the supervisor and the plugin process and waits for both,
// and for every Subscribe goroutine (their channels are closed).
// It returns ctx.Err() if ctx ends first (the shutdown still completes in
// the background). Close is idempotent; calls after Close fail with
// ErrClosed.
func (p *Plugin) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.stop()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// supervise owns the plugin processes: it waits for the current one to
// exit, then relaunches with backoff until one starts or Close is called.
func (p *Plugin) supervise(ctx context.Context, pr *proc) {
	defer close(p.done)
	defer p.subs.Wait()  // subscriptions end on ctx; their streams on the kill below
	defer p.fork.close() // after the last kill: see forker
	backoff := minBackoff
	for {
		select {
		case <-ctx.Done():
			p.setCurrent(nil)
			pr.kill()
			p.log.Info("driver plugin stopped", "pid", pr.pid)
			return
		case <-pr.exited.Done():
		}
		p.setCurrent(nil)
		pr.kill() // reaps go-plugin's goroutines, removes the socket dir
		p.exits.Add(1)
		uptime := time.Since(pr.started)
		if uptime >= stableAfter {
			backoff = minBackoff
		}
		p.log.Warn("driver plugin exited; restarting", "pid", pr.pid, "error", pr.exitErr, "uptime", uptime.Round(time.Millisecond), "retry_in", backoff)

		for pr = nil; pr == nil; {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
			p.mu.Lock()
			config := p.config
			p.mu.Unlock()
			lctx, cancel := context.WithTimeout(ctx, restartBudget)
			next, err := launch(lctx, p.launch, config, p.fork, p.hclog, p.log)
			cancel()
			if err != nil {
				p.mu.Lock()
				p.lastErr = err
				p.mu.Unlock()
				p.log.Error("driver plugin restart failed", "error", err, "retry_in", backoff)
				continue
			}
			pr = next
		}
		p.mu.Lock()
		p.cur, p.info, p.lastErr = pr, pr.info, nil
		close(p.restarted)
		p.restarted = make(chan struct{})
		p.mu.Unlock()
		p.log.Info("driver plugin restarted", "pid", pr.pid)
		// If Close came in meanwhile, the select at the top kills pr.
	}
}

func (p *Plugin) setCurrent(pr *proc) {
	p.mu.Lock()
	p.cur = pr
	p.mu.Unlock()
}

// current returns the running process, or the error a call made now gets:
// ErrClosed, or ErrPluginExited while the plugin is down. The latter
// carries the latest relaunch failure, so a restart refused for a
// checksum mismatch reads (and errors.Is) as ErrChecksum too.
func (p *Plugin) current() (*proc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, ErrClosed
	case p.cur == nil && p.lastErr != nil:
		return nil, fmt.Errorf("%w: restart failed: %w", ErrPluginExited, p.lastErr)
	case p.cur == nil:
		return nil, fmt.Errorf("%w: restarting", ErrPluginExited)
	}
	return p.cur, nil
}

// call runs fn against the current process. The RPC is cancelled when ctx
// ends or the process exits, so a call never outlives a dead plugin.
func (p *Plugin) call(ctx context.Context, op string, fn func(context.Context, *driver.Client) error) error {
	pr, err := p.current()
	if err != nil {
		return &CallError{Driver: p.name, Op: op, Err: err}
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(pr.exited, cancel)()

	err = fn(cctx, pr.drv)
	return p.callError(ctx, op, pr, err)
}

// callError classifies err, from a call to pr that ctx bounded.
func (p *Plugin) callError(ctx context.Context, op string, pr *proc, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		switch {
		case pr.exited.Err() != nil:
			err = fmt.Errorf("%w: pid %d: %v", ErrPluginExited, pr.pid, pr.exitErr)
		case status.Code(err) == codes.Unavailable:
			// The connection broke; the exit is about to be noticed.
			err = fmt.Errorf("%w: pid %d: %w", ErrPluginExited, pr.pid, err)
		}
		p.mu.Lock()
		if p.closed {
			err = ErrClosed
		}
		p.mu.Unlock()
	}
	return &CallError{Driver: p.name, Op: op, Err: err}
}

// Configure reconfigures the running plugin and, on success, keeps config
// for future restarts.
func (p *Plugin) Configure(ctx context.Context, config []byte) error {
	config = slices.Clone(config)
	return p.call(ctx, "Configure", func(ctx context.Context, d *driver.Client) error {
		if err := d.Configure(ctx, config); err != nil {
			return err
		}
		p.mu.Lock()
		p.config = config
		p.mu.Unlock()
		return nil
	})
}

// Spawn implements driver.Driver.
func (p *Plugin) Spawn(ctx context.Context, spec driver.Spec) error {
	return p.call(ctx, "Spawn", func(ctx context.Context, d *driver.Client) error { return d.Spawn(ctx, spec) })
}

// Destroy implements driver.Driver.
func (p *Plugin) Destroy(ctx context.Context, id string) error {
	return p.call(ctx, "Destroy", func(ctx context.Context, d *driver.Client) error { return d.Destroy(ctx, id) })
}

// Inspect implements driver.Driver.
func (p *Plugin) Inspect(ctx context.Context, id string) (driver.Instance, error) {
	var in driver.Instance
	err := p.call(ctx, "Inspect", func(ctx context.Context, d *driver.Client) (err error) {
		in, err = d.Inspect(ctx, id)
		return err
	})
	return in, err
}

// List implements driver.Driver.
func (p *Plugin) List(ctx context.Context) ([]driver.Instance, error) {
	var ins []driver.Instance
	err := p.call(ctx, "List", func(ctx context.Context, d *driver.Client) (err error) {
		ins, err = d.List(ctx)
		return err
	})
	return ins, err
}

// PowerOff implements driver.Driver.
func (p *Plugin) PowerOff(ctx context.Context, id string) error {
	return p.call(ctx, "PowerOff", func(ctx context.Context, d *driver.Client) error { return d.PowerOff(ctx, id) })
}

// PowerOn implements driver.Driver.
func (p *Plugin) PowerOn(ctx context.Context, id string) error {
	return p.call(ctx, "PowerOn", func(ctx context.Context, d *driver.Client) error { return d.PowerOn(ctx, id) })
}

// Reboot implements driver.Driver.
func (p *Plugin) Reboot(ctx context.Context, id string, hard bool) error {
	return p.call(ctx, "Reboot", func(ctx context.Context, d *driver.Client) error { return d.Reboot(ctx, id, hard) })
}
