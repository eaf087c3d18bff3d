package drivertest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// unreadEvents is how many power changes the suite makes while an Events
// subscription goes unread; more than a driver can be expected to buffer.
const unreadEvents = 600

// optionalCap is one optional capability and its subtest.
type optionalCap struct {
	name       string // the capability, e.g. driver.CapRebuild
	subtest    string
	implements func(driver.Driver) bool
	test       func(*testing.T, driver.Driver)
	// unsupported calls every method of the interface, for a Forwarder
	// that must refuse them.
	unsupported func(context.Context, driver.Driver) []error
}

var optionalCaps = []optionalCap{
	{
		name: driver.CapRebuild, subtest: "Rebuild",
		implements: func(d driver.Driver) bool { _, ok := d.(driver.Rebuilder); return ok },
		test:       testRebuild,
		unsupported: func(ctx context.Context, d driver.Driver) []error {
			return []error{d.(driver.Rebuilder).Rebuild(ctx, "x", driver.Image{ID: "x"})}
		},
	},
	{
		name: driver.CapResize, subtest: "Resize",
		implements: func(d driver.Driver) bool { _, ok := d.(driver.Resizer); return ok },
		test:       testResize,
		unsupported: func(ctx context.Context, d driver.Driver) []error {
			r := d.(driver.Resizer)
			return []error{r.Resize(ctx, "x", driver.ResizeQueue, bigger), r.ConfirmResize(ctx, "x"), r.RevertResize(ctx, "x", bigger)}
		},
	},
	{
		name: driver.CapEvents, subtest: "Events",
		implements: func(d driver.Driver) bool { _, ok := d.(driver.EventSource); return ok },
		test:       testEvents,
		unsupported: func(ctx context.Context, d driver.Driver) []error {
			_, err := d.(driver.EventSource).Events(ctx)
			return []error{err}
		},
	},
}

func runOptional(t *testing.T, d driver.Driver) {
	info, err := d.Info(callCtx(t))
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	caps := driver.Capabilities(d, info)
	for _, c := range optionalCaps {
		has := slices.Contains(caps, c.name)
		switch {
		case has && c.implements(d):
			t.Run(c.subtest, func(t *testing.T) { c.test(t, d) })
		case has:
			t.Errorf("Info reports capability %q, but %T does not implement its interface", c.name, d)
		case c.implements(d): // a Forwarder whose far side lacks it
			t.Run(c.subtest+"Unsupported", func(t *testing.T) {
				for _, err := range c.unsupported(callCtx(t), d) {
					if !errors.Is(err, driver.ErrUnsupported) {
						t.Errorf("without capability %q: err = %v, want ErrUnsupported", c.name, err)
					}
				}
			})
		}
	}
}

// bigger and biggest are the flavors the resize subtests move to.
var (
	bigger  = driver.Flavor{Name: "m1.medium", VCPUs: 2, RAMMB: 2048, DiskGB: 20}
	biggest = driver.Flavor{Name: "m1.large", VCPUs: 4, RAMMB: 8192, DiskGB: 40}
)

// spawned spawns an instance for a subtest and destroys it afterwards.
func spawned(t *testing.T, d driver.Driver) driver.Spec {
	t.Helper()
	spec := newSpec(t)
	if err := d.Spawn(callCtx(t), spec); err != nil {
		t.Fatalf("Spawn(%s): %v", spec.ID, err)
	}
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.ID) })
	return spec
}

func testRebuild(t *testing.T, d driver.Driver) {
	r := d.(driver.Rebuilder)
	ctx := callCtx(t)
	spec := spawned(t, d)
	newer := driver.Image{ID: "cirros-0.6", Name: "cirros 0.6", Source: "cirros-0.6.qcow2", DiskFormat: "qcow2"}
	steps := []struct {
		name string
		do   func() error
		want driver.PowerState
	}{
		{"Rebuild of a running instance", func() error { return r.Rebuild(ctx, spec.ID, newer) }, driver.PowerRunning},
		{"Rebuild again with the same image", func() error { return r.Rebuild(ctx, spec.ID, newer) }, driver.PowerRunning},
		{"PowerOff", func() error { return d.PowerOff(ctx, spec.ID) }, driver.PowerShutdown},
		{"Rebuild of a shut down instance", func() error { return r.Rebuild(ctx, spec.ID, spec.Image) }, driver.PowerShutdown},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s(%s): %v", s.name, spec.ID, err)
		}
		wantPower(t, d, spec.ID, s.want, "after "+s.name)
	}
	wantListed(t, d, spec.ID, 1)
	if err := r.Rebuild(ctx, newID(t), newer); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Rebuild(unknown id): err = %v, want ErrNotFound", err)
	}
}

func testResize(t *testing.T, d driver.Driver) {
	r := d.(driver.Resizer)
	ctx := callCtx(t)
	spec := spawned(t, d)
	resize := func(to driver.Flavor) []resizeStep {
		var steps []resizeStep
		for _, st := range []driver.ResizeStep{driver.ResizeQueue, driver.ResizePrepare, driver.ResizeFinish} {
			call := func() error { return r.Resize(ctx, spec.ID, st, to) }
			steps = append(steps, resizeStep{"Resize " + string(st) + " to " + to.Name, call}, resizeStep{"Resize " + string(st) + " to " + to.Name + " again", call})
		}
		return steps
	}
	confirm := func() error { return r.ConfirmResize(ctx, spec.ID) }
	revert := func() error { return r.RevertResize(ctx, spec.ID, bigger) }

	// Up to bigger while running, confirmed; then shut down, up to
	// biggest, reverted to bigger. The power state never changes.
	plan := resize(bigger)
	plan = append(plan, resizeStep{"ConfirmResize", confirm}, resizeStep{"ConfirmResize again", confirm})
	for _, s := range plan {
		if err := s.do(); err != nil {
			t.Fatalf("%s(%s): %v", s.name, spec.ID, err)
		}
		wantPower(t, d, spec.ID, driver.PowerRunning, "after "+s.name)
	}
	if err := d.PowerOff(ctx, spec.ID); err != nil {
		t.Fatalf("PowerOff(%s): %v", spec.ID, err)
	}
	plan = resize(biggest)
	plan = append(plan, resizeStep{"RevertResize", revert}, resizeStep{"RevertResize again", revert})
	for _, s := range plan {
		if err := s.do(); err != nil {
			t.Fatalf("%s(%s): %v", s.name, spec.ID, err)
		}
		wantPower(t, d, spec.ID, driver.PowerShutdown, "after "+s.name)
	}
	wantListed(t, d, spec.ID, 1)

	unknown := newID(t)
	for name, err := range map[string]error{
		"Resize":        r.Resize(ctx, unknown, driver.ResizeQueue, bigger),
		"ConfirmResize": r.ConfirmResize(ctx, unknown),
		"RevertResize":  r.RevertResize(ctx, unknown, bigger),
	} {
		if !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("%s(unknown id %s): err = %v, want ErrNotFound", name, unknown, err)
		}
	}
}

type resizeStep struct {
	name string
	do   func() error
}

// testEvents checks only what the contract promises: the stream closes
// when ctx ends, and nobody reading it does not hold the driver up.
// Whether a change the suite makes through the driver is reported is the
// driver's choice, so it is not tested.
func testEvents(t *testing.T, d driver.Driver) {
	src := d.(driver.EventSource)

	t.Run("ClosesWhenCtxEnds", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		events, err := src.Events(ctx)
		if err != nil {
			cancel()
			t.Fatalf("Events: %v", err)
		}
		cancel()
		drained := make(chan struct{})
		go func() {
			for range events {
			}
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(callTimeout):
			t.Fatalf("the Events channel was not closed within %v of its ctx ending", callTimeout)
		}
	})

	t.Run("UnreadDoesNotBlock", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if _, err := src.Events(ctx); err != nil { // never read
			t.Fatalf("Events: %v", err)
		}
		spec := spawned(t, d)
		callCtx := callCtx(t) // the calls fail rather than hang
		for i := range unreadEvents / 2 {
			if err := d.PowerOff(callCtx, spec.ID); err != nil {
				t.Fatalf("PowerOff #%d with an unread Events subscription: %v", i+1, err)
			}
			if err := d.PowerOn(callCtx, spec.ID); err != nil {
				t.Fatalf("PowerOn #%d with an unread Events subscription: %v", i+1, err)
			}
		}
		wantPower(t, d, spec.ID, driver.PowerRunning, "after the power cycles")
	})
}
