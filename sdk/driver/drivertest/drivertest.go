// Package drivertest is the conformance suite for Lucid drivers, in the
// spirit of io/fs's fstest: a vendor runs it against their Driver, in
// process or through the plugin host, and Lucid's own drivers run it too.
//
//	func TestConformance(t *testing.T) { drivertest.Run(t, newMyDriver()) }
//
// The suite only goes through the driver.Driver interface. It creates its
// own instances with random IDs and destroys them, so it may run against a
// driver that already holds other instances; it never lists or destroys
// instances it did not create. The driver must already be configured.
package drivertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// callTimeout bounds each driver call, so a hung driver fails the suite
// instead of hanging it. Generous: real hypervisors take a while to boot.
const callTimeout = time.Minute

// promptly is how fast a call given an already cancelled ctx must return.
const promptly = 2 * time.Second

// Run checks d against the Driver contract in subtests:
//   - Info returns a name and a version;
//   - Spawn, then Inspect reports running and List includes the instance;
//   - Spawn is idempotent on the ID;
//   - PowerOff, PowerOn and Reboot (soft and hard) move the power state;
//   - Destroy removes the instance, and a second Destroy is ErrNotFound;
//   - every per-instance method on an unknown ID returns ErrNotFound;
//   - a call with a cancelled ctx returns promptly with context.Canceled;
//   - concurrent use is safe.
//
// For each optional capability d has (driver.Capabilities of d and its
// Info: the interfaces d implements, or for a driver.Forwarder such as the
// host's plugin, what its Info reports):
//   - Rebuild keeps the ID and the power state, repeats harmlessly, and
//     an unknown ID is ErrNotFound;
//   - Resize runs queue, prepare and finish in order (each repeatable)
//     keeping the power state, then ConfirmResize; another resize ends in
//     RevertResize; both repeat harmlessly; an unknown ID is ErrNotFound;
//   - Events returns a channel that is closed once ctx ends, and an
//     unread subscription does not block the driver's other methods.
//
// A Forwarder lacking a capability must answer its methods with
// driver.ErrUnsupported; a driver whose Info claims a capability its type
// does not implement fails.
func Run(t *testing.T, d driver.Driver) {
	t.Helper()
	t.Run("Info", func(t *testing.T) { testInfo(t, d) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, d) })
	t.Run("UnknownID", func(t *testing.T) { testUnknownID(t, d) })
	t.Run("Cancelled", func(t *testing.T) { testCancelled(t, d) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, d) })
	runOptional(t, d)
}

func testInfo(t *testing.T, d driver.Driver) {
	ctx := callCtx(t)
	info, err := d.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name == "" || info.Version == "" {
		t.Errorf("Info = %+v, want non-empty Name and Version", info)
	}
}

func testLifecycle(t *testing.T, d driver.Driver) {
	ctx := callCtx(t)
	spec := newSpec(t)
	if err := d.Spawn(ctx, spec); err != nil {
		t.Fatalf("Spawn(%s): %v", spec.ID, err)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			_ = d.Destroy(context.Background(), spec.ID)
		}
	})

	wantPower(t, d, spec.ID, driver.PowerRunning, "after Spawn")
	wantListed(t, d, spec.ID, 1)

	if err := d.Spawn(ctx, spec); err != nil {
		t.Fatalf("second Spawn(%s) with the same ID: %v, want nil (idempotent)", spec.ID, err)
	}
	wantPower(t, d, spec.ID, driver.PowerRunning, "after second Spawn")
	wantListed(t, d, spec.ID, 1)

	steps := []struct {
		name string
		do   func() error
		want driver.PowerState
	}{
		{"PowerOff", func() error { return d.PowerOff(ctx, spec.ID) }, driver.PowerShutdown},
		{"PowerOn", func() error { return d.PowerOn(ctx, spec.ID) }, driver.PowerRunning},
		{"soft Reboot", func() error { return d.Reboot(ctx, spec.ID, false) }, driver.PowerRunning},
		{"hard Reboot", func() error { return d.Reboot(ctx, spec.ID, true) }, driver.PowerRunning},
		{"PowerOff again", func() error { return d.PowerOff(ctx, spec.ID) }, driver.PowerShutdown},
		{"hard Reboot of a shut down instance", func() error { return d.Reboot(ctx, spec.ID, true) }, driver.PowerRunning},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s(%s): %v", s.name, spec.ID, err)
		}
		wantPower(t, d, spec.ID, s.want, "after "+s.name)
	}

	if err := d.Destroy(ctx, spec.ID); err != nil {
		t.Fatalf("Destroy(%s): %v", spec.ID, err)
	}
	destroyed = true
	if _, err := d.Inspect(ctx, spec.ID); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect(%s) after Destroy: err = %v, want ErrNotFound", spec.ID, err)
	}
	wantListed(t, d, spec.ID, 0)
	if err := d.Destroy(ctx, spec.ID); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("second Destroy(%s): err = %v, want ErrNotFound", spec.ID, err)
	}
}

func testUnknownID(t *testing.T, d driver.Driver) {
	ctx := callCtx(t)
	id := newID(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"Inspect", func() error { _, err := d.Inspect(ctx, id); return err }},
		{"Destroy", func() error { return d.Destroy(ctx, id) }},
		{"PowerOff", func() error { return d.PowerOff(ctx, id) }},
		{"PowerOn", func() error { return d.PowerOn(ctx, id) }},
		{"Reboot", func() error { return d.Reboot(ctx, id, false) }},
		{"hard Reboot", func() error { return d.Reboot(ctx, id, true) }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("%s(unknown id %s): err = %v, want ErrNotFound", c.name, id, err)
		}
	}
}

func testCancelled(t *testing.T, d driver.Driver) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	spec := newSpec(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"Spawn", func() error { return d.Spawn(ctx, spec) }},
		{"Inspect", func() error { _, err := d.Inspect(ctx, spec.ID); return err }},
		{"List", func() error { _, err := d.List(ctx); return err }},
		{"Destroy", func() error { return d.Destroy(ctx, spec.ID) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		if took := time.Since(start); took > promptly {
			t.Errorf("%s with a cancelled ctx took %v, want < %v", c.name, took, promptly)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled ctx: err = %v, want context.Canceled", c.name, err)
		}
	}
	// A Spawn refused for cancellation must not have created the instance.
	if _, err := d.Inspect(callCtx(t), spec.ID); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect(%s) after a cancelled Spawn: err = %v, want ErrNotFound", spec.ID, err)
		_ = d.Destroy(context.Background(), spec.ID)
	}
}

func testConcurrent(t *testing.T, d driver.Driver) {
	ctx := callCtx(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		spec := newSpec(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- cycle(ctx, d, spec)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// cycle spawns, inspects, power-cycles and destroys one instance.
func cycle(ctx context.Context, d driver.Driver, spec driver.Spec) (err error) {
	if err := d.Spawn(ctx, spec); err != nil {
		return fmt.Errorf("Spawn(%s): %w", spec.ID, err)
	}
	defer func() {
		if derr := d.Destroy(ctx, spec.ID); derr != nil && err == nil {
			err = fmt.Errorf("Destroy(%s): %w", spec.ID, derr)
		}
	}()
	if in, err := d.Inspect(ctx, spec.ID); err != nil || in.Power != driver.PowerRunning {
		return fmt.Errorf("Inspect(%s) = %+v, %v; want running", spec.ID, in, err)
	}
	if err := d.PowerOff(ctx, spec.ID); err != nil {
		return fmt.Errorf("PowerOff(%s): %w", spec.ID, err)
	}
	if _, err := d.List(ctx); err != nil {
		return fmt.Errorf("List: %w", err)
	}
	return nil
}

func wantPower(t *testing.T, d driver.Driver, id string, want driver.PowerState, when string) {
	t.Helper()
	in, err := d.Inspect(callCtx(t), id)
	if err != nil {
		t.Fatalf("Inspect(%s) %s: %v", id, when, err)
	}
	if in.ID != id || in.Power != want {
		t.Fatalf("Inspect(%s) %s = %+v, want ID %s power %q", id, when, in, id, want)
	}
}

// wantListed checks that List holds id exactly n times, with the same
// power state as Inspect reports.
func wantListed(t *testing.T, d driver.Driver, id string, n int) {
	t.Helper()
	all, err := d.List(callCtx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got := 0
	for _, in := range all {
		if in.ID == id {
			got++
		}
	}
	if got != n {
		ids := make([]string, 0, len(all))
		for _, in := range all {
			ids = append(ids, in.ID)
		}
		slices.Sort(ids)
		t.Fatalf("List holds %s %d times, want %d; listed: %v", id, got, n, ids)
	}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newSpec(t *testing.T) driver.Spec {
	id := newID(t)
	return driver.Spec{ID: id, Name: "drivertest-" + id[:8], Flavor: driver.Flavor{Name: "m1.tiny", VCPUs: 1, RAMMB: 512, DiskGB: 1}, Image: driver.Image{ID: "cirros", Name: "cirros"}}
}

// newID returns a random version 4 UUID, the form of Lucid's instance IDs.
func newID(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random id: %v", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
