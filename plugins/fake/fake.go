package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// version is reported by Info.
const version = "0.2.0"

// eventBuffer is how many events one Events subscriber may have waiting;
// past that the fake drops them (and counts them in droppedEvents) rather
// than block the method that caused them.
const eventBuffer = 256

// fake is the simulated hypervisor. All state is guarded by mu; delays are
// spent outside the lock so slow operations do not serialise the driver.
// Every change is written to the journal (when state_file is set) before
// it is made in memory, so a failed write changes nothing.
type fake struct {
	stderr io.Writer // the process's real stderr, for crash_on's last words

	mu        sync.Mutex
	cfg       config
	instances map[string]*instance
	sorted    []*instance // instances by ID; nil when membership changed since
	journal   *journal    // nil without state_file
	control   *control    // nil without control_socket
	subs      map[chan driver.Event]struct{}
	dropped   uint64 // events dropped for full subscriber buffers
}

// instance is one simulated instance; the JSON form is the journal's and
// the control API's.
type instance struct {
	ID     string            `json:"id"`
	Name   string            `json:"name,omitempty"`
	Flavor flavor            `json:"flavor"`
	Image  image             `json:"image"`
	Power  driver.PowerState `json:"power"`
	// Resizing is the resize in progress (queued or prepared), nil when
	// there is none.
	Resizing *resizing `json:"resizing,omitempty"`
	// OldFlavor is kept from a finished resize until it is confirmed or
	// reverted.
	OldFlavor *flavor `json:"old_flavor,omitempty"`
	// Unmanaged: added through the control API, not spawned by Lucid.
	Unmanaged bool `json:"unmanaged,omitempty"`
}

// flavor and image are driver.Flavor and driver.Image with JSON names;
// they convert to and from them directly.
type flavor struct {
	Name   string `json:"name,omitempty"`
	VCPUs  int    `json:"vcpus,omitempty"`
	RAMMB  int    `json:"ram_mb,omitempty"`
	DiskGB int    `json:"disk_gb,omitempty"`
}

type image struct {
	ID         string `json:"id,omitempty"`
	Name       string `json:"name,omitempty"`
	Source     string `json:"source,omitempty"`
	DiskFormat string `json:"disk_format,omitempty"`
}

// resizing records the last resize step that succeeded and its flavor.
type resizing struct {
	Step   driver.ResizeStep `json:"step"`
	Flavor flavor            `json:"flavor"`
}

var (
	_ driver.Driver      = (*fake)(nil)
	_ driver.Rebuilder   = (*fake)(nil)
	_ driver.Resizer     = (*fake)(nil)
	_ driver.EventSource = (*fake)(nil)
)

func newFake(stderr io.Writer) *fake {
	return &fake{stderr: stderr, instances: make(map[string]*instance), subs: make(map[chan driver.Event]struct{})}
}

// Close stops the control socket and closes the journal. The plugin
// process never calls it (the host kills the process, which loses
// nothing: every change is already written); tests do.
func (f *fake) Close() error {
	f.mu.Lock()
	c, j := f.control, f.journal
	f.control, f.journal = nil, nil
	f.mu.Unlock()
	var errs []error
	if c != nil {
		errs = append(errs, c.close())
	}
	if j != nil {
		errs = append(errs, j.close())
	}
	return errors.Join(errs...)
}

// enter starts every method: it honours a cancelled ctx, fires crash_on and
// returns the config the call should use.
func (f *fake) enter(ctx context.Context, method string) (config, error) {
	if err := ctx.Err(); err != nil {
		return config{}, err
	}
	f.mu.Lock()
	cfg := f.cfg
	f.mu.Unlock()
	if cfg.crashOn == method {
		fmt.Fprintf(f.stderr, "[ERROR] fake: crash_on = %q: exiting with status 2\n", method)
		os.Exit(2)
	}
	return cfg, nil
}

func (f *fake) Info(ctx context.Context) (driver.Info, error) {
	if _, err := f.enter(ctx, "Info"); err != nil {
		return driver.Info{}, err
	}
	// Serve adds rebuild, resize and events: the fake implements them.
	return driver.Info{Name: "fake", Version: version, Capabilities: []string{"power", "reboot"}}, nil
}

// Configure replaces the whole config (absent keys go back to defaults).
// With state_file it replaces the in-memory instances with the file's;
// with control_socket it (re)starts the control API. On error nothing
// changes.
func (f *fake) Configure(ctx context.Context, raw []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return err
	}

	// Everything under mu, so that no change lands in the old journal
	// after the new one was read. Closing the control server does not
	// wait for its handlers, which may be waiting for mu.
	f.mu.Lock()
	defer f.mu.Unlock()
	var j *journal
	var loaded map[string]*instance
	if cfg.stateFile != "" {
		if j, loaded, err = openJournal(cfg.stateFile); err != nil {
			return fmt.Errorf("%w: state_file: %v", driver.ErrInvalidConfig, err)
		}
	}
	c := f.control
	if c == nil || cfg.controlSocket != f.cfg.controlSocket {
		c = nil
		if cfg.controlSocket != "" {
			if c, err = startControl(cfg.controlSocket, f); err != nil {
				if j != nil {
					j.close()
				}
				return fmt.Errorf("%w: control_socket: %v", driver.ErrInvalidConfig, err)
			}
		}
		if f.control != nil {
			f.control.close()
		}
	}
	if f.journal != nil {
		f.journal.close()
	}
	f.cfg, f.journal, f.control = cfg, j, c
	if loaded != nil {
		f.instances, f.sorted = loaded, nil
	}
	return nil
}

func (f *fake) Spawn(ctx context.Context, spec driver.Spec) error {
	cfg, err := f.enter(ctx, "Spawn")
	if err != nil {
		return err
	}
	if spec.ID == "" {
		return errors.New("fake: spawn: empty instance id")
	}
	f.mu.Lock()
	_, exists := f.instances[spec.ID]
	f.mu.Unlock()
	if exists {
		return nil
	}
	if err := sleep(ctx, cfg.bootDelay); err != nil {
		return err
	}
	if cfg.failSpawn != "" {
		return fmt.Errorf("fake: spawn %s: %s", spec.ID, cfg.failSpawn)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[spec.ID]; ok {
		return nil // a concurrent Spawn of the same ID won
	}
	return f.putLocked(&instance{ID: spec.ID, Name: spec.Name, Flavor: flavor(spec.Flavor), Image: image(spec.Image), Power: driver.PowerRunning})
}

func (f *fake) Destroy(ctx context.Context, id string) error {
	cfg, err := f.enter(ctx, "Destroy")
	if err != nil {
		return err
	}
	if _, err := f.get(id); err != nil {
		return err
	}
	if err := sleep(ctx, cfg.destroyDelay); err != nil {
		return err
	}
	if cfg.failDestroy != "" {
		return fmt.Errorf("fake: destroy %s: %s", id, cfg.failDestroy)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[id]; !ok {
		return notFound(id)
	}
	return f.deleteLocked(id)
}

func (f *fake) Inspect(ctx context.Context, id string) (driver.Instance, error) {
	if _, err := f.enter(ctx, "Inspect"); err != nil {
		return driver.Instance{}, err
	}
	return f.get(id)
}

// List returns every instance sorted by ID. The sorted order is kept
// between calls and rebuilt only after an instance was added or removed,
// so listing 10,000 instances that did not come or go is one pass.
func (f *fake) List(ctx context.Context) ([]driver.Instance, error) {
	if _, err := f.enter(ctx, "List"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]driver.Instance, len(f.sortedLocked()))
	for i, in := range f.sorted {
		out[i] = driver.Instance{ID: in.ID, Power: in.Power}
	}
	return out, nil
}

func (f *fake) sortedLocked() []*instance {
	if f.sorted == nil {
		f.sorted = make([]*instance, 0, len(f.instances))
		for _, in := range f.instances {
			f.sorted = append(f.sorted, in)
		}
		slices.SortFunc(f.sorted, func(a, b *instance) int { return strings.Compare(a.ID, b.ID) })
	}
	return f.sorted
}

func (f *fake) PowerOff(ctx context.Context, id string) error {
	if _, err := f.enter(ctx, "PowerOff"); err != nil {
		return err
	}
	return f.update(id, func(in *instance) error { in.Power = driver.PowerShutdown; return nil })
}

func (f *fake) PowerOn(ctx context.Context, id string) error {
	if _, err := f.enter(ctx, "PowerOn"); err != nil {
		return err
	}
	return f.update(id, func(in *instance) error { in.Power = driver.PowerRunning; return nil })
}

// Reboot: a soft reboot needs a running instance (the guest must cooperate);
// a hard reboot resets from any state.
func (f *fake) Reboot(ctx context.Context, id string, hard bool) error {
	if _, err := f.enter(ctx, "Reboot"); err != nil {
		return err
	}
	return f.update(id, func(in *instance) error {
		if !hard && in.Power != driver.PowerRunning {
			return fmt.Errorf("fake: soft reboot of %s: instance is %s, not running", id, in.Power)
		}
		in.Power = driver.PowerRunning
		return nil
	})
}

// Rebuild swaps the image after rebuild_delay; the power state, flavor and
// any resize in progress are kept.
func (f *fake) Rebuild(ctx context.Context, id string, im driver.Image) error {
	cfg, err := f.enter(ctx, "Rebuild")
	if err != nil {
		return err
	}
	if _, err := f.get(id); err != nil {
		return err
	}
	if err := sleep(ctx, cfg.rebuildDelay); err != nil {
		return err
	}
	if cfg.failRebuild != "" {
		return fmt.Errorf("fake: rebuild %s: %s", id, cfg.failRebuild)
	}
	return f.update(id, func(in *instance) error { in.Image = image(im); return nil })
}

// Resize runs one step after resize_delay. The steps must come in order
// (queue, prepare, finish, each repeatable) for the same flavor: a fake
// that refuses a step out of order catches a caller that skips one. A new
// queue starts over, except while a finished resize awaits confirm or
// revert. Finish switches the flavor and keeps the old one.
func (f *fake) Resize(ctx context.Context, id string, step driver.ResizeStep, fl driver.Flavor) error {
	cfg, err := f.enter(ctx, "Resize")
	if err != nil {
		return err
	}
	if !slices.Contains(resizeSteps, step) {
		return fmt.Errorf("fake: resize %s: unknown step %q: %w", id, step, driver.ErrUnsupported)
	}
	if _, err := f.get(id); err != nil {
		return err
	}
	if err := sleep(ctx, cfg.resizeDelay); err != nil {
		return err
	}
	if slices.Contains(cfg.failResize, step) {
		return fmt.Errorf("fake: resize %s: step %s: injected resize failure", id, step)
	}
	want := flavor(fl)
	return f.update(id, func(in *instance) error {
		finished := in.OldFlavor != nil
		switch step {
		case driver.ResizeQueue:
			if finished {
				return fmt.Errorf("fake: resize %s: a finished resize to %q awaits confirm or revert", id, in.Flavor.Name)
			}
			in.Resizing = &resizing{Step: step, Flavor: want}
		case driver.ResizePrepare:
			if finished || in.Resizing == nil || in.Resizing.Flavor != want {
				return fmt.Errorf("fake: resize %s: step prepare to %q before queue", id, want.Name)
			}
			in.Resizing.Step = step
		case driver.ResizeFinish:
			if finished && in.Flavor == want && in.Resizing == nil {
				return nil // done already
			}
			if finished || in.Resizing == nil || in.Resizing.Flavor != want || in.Resizing.Step != driver.ResizePrepare {
				return fmt.Errorf("fake: resize %s: step finish to %q before prepare", id, want.Name)
			}
			old := in.Flavor
			in.Flavor, in.OldFlavor, in.Resizing = want, &old, nil
		}
		return nil
	})
}

// ConfirmResize drops the old flavor; with none kept it does nothing.
func (f *fake) ConfirmResize(ctx context.Context, id string) error {
	cfg, err := f.enter(ctx, "ConfirmResize")
	if err != nil {
		return err
	}
	if cfg.failConfirmResize != "" {
		if _, err := f.get(id); err != nil {
			return err
		}
		return fmt.Errorf("fake: confirm resize %s: %s", id, cfg.failConfirmResize)
	}
	return f.update(id, func(in *instance) error { in.OldFlavor, in.Resizing = nil, nil; return nil })
}

// RevertResize goes back to old (Lucid's record of it) after resize_delay
// and drops what was kept; reverting again changes nothing.
func (f *fake) RevertResize(ctx context.Context, id string, old driver.Flavor) error {
	cfg, err := f.enter(ctx, "RevertResize")
	if err != nil {
		return err
	}
	if _, err := f.get(id); err != nil {
		return err
	}
	if err := sleep(ctx, cfg.resizeDelay); err != nil {
		return err
	}
	if cfg.failRevertResize != "" {
		return fmt.Errorf("fake: revert resize %s: %s", id, cfg.failRevertResize)
	}
	return f.update(id, func(in *instance) error {
		in.Flavor, in.OldFlavor, in.Resizing = flavor(old), nil, nil
		return nil
	})
}

// Events subscribes to the fake's events until ctx ends. The fake sends
// EventPower for every change of an instance's power state, whether the
// control API or a driver method (PowerOff, PowerOn, Reboot) made it: a
// hypervisor cannot tell who pressed the button, and the receiver
// re-inspects anyway. The control API's vanish and add send EventVanished
// and EventAppeared; Lucid's own Spawn and Destroy send nothing. A
// subscriber more than eventBuffer events behind loses the newer ones.
func (f *fake) Events(ctx context.Context) (<-chan driver.Event, error) {
	if _, err := f.enter(ctx, "Events"); err != nil {
		return nil, err
	}
	ch := make(chan driver.Event, eventBuffer)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, ch)
		close(ch)
	})
	return ch, nil
}

// emitLocked sends ev to every subscriber that has room. f.mu is held,
// which keeps Events' close from racing the send.
func (f *fake) emitLocked(ev driver.Event) {
	ev.At = time.Now()
	for ch := range f.subs {
		select {
		case ch <- ev:
		default:
			f.dropped++
		}
	}
}

func (f *fake) get(id string) (driver.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.instances[id]
	if !ok {
		return driver.Instance{}, notFound(id)
	}
	return driver.Instance{ID: in.ID, Power: in.Power}, nil
}

func notFound(id string) error { return fmt.Errorf("fake: instance %s: %w", id, driver.ErrNotFound) }

// update applies change to a copy of instance id, journals the copy and
// then keeps it; on any error nothing changes. A change of power state is
// sent to Events subscribers.
func (f *fake) update(id string, change func(*instance) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.instances[id]
	if !ok {
		return notFound(id)
	}
	next := in.clone()
	if err := change(next); err != nil {
		return err
	}
	if err := f.writeLocked(next); err != nil {
		return err
	}
	before := in.Power
	*in = *next // in place: f.sorted holds the pointer
	f.compactLocked()
	if in.Power != before {
		f.emitLocked(driver.Event{Kind: driver.EventPower, ID: id, Power: in.Power})
	}
	return nil
}

// putLocked journals and adds a new instance.
func (f *fake) putLocked(in *instance) error {
	if err := f.writeLocked(in); err != nil {
		return err
	}
	f.instances[in.ID] = in
	f.sorted = nil
	f.compactLocked()
	return nil
}

// deleteLocked journals and removes an instance.
func (f *fake) deleteLocked(id string) error {
	if f.journal != nil {
		if err := f.journal.del(id); err != nil {
			return fmt.Errorf("fake: state_file: %w", err)
		}
	}
	delete(f.instances, id)
	f.sorted = nil
	f.compactLocked()
	return nil
}

func (f *fake) writeLocked(in *instance) error {
	if f.journal == nil {
		return nil
	}
	if err := f.journal.put(in); err != nil {
		return fmt.Errorf("fake: state_file: %w", err)
	}
	return nil
}

// compactLocked rewrites the journal as a snapshot once it has grown past
// its bound. A failure is only logged: the journal is still complete.
func (f *fake) compactLocked() {
	if f.journal == nil {
		return
	}
	if err := f.journal.compactIfLong(f.instances); err != nil {
		fmt.Fprintf(f.stderr, "[WARN] fake: state_file: compaction failed, journal kept: %v\n", err)
	}
}

func (in *instance) clone() *instance {
	c := *in
	if in.Resizing != nil {
		r := *in.Resizing
		c.Resizing = &r
	}
	if in.OldFlavor != nil {
		o := *in.OldFlavor
		c.OldFlavor = &o
	}
	return &c
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
