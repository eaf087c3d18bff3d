package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/sdk/driver"
)

// run performs op for rec, retrying while the driver is unavailable (its
// plugin is being restarted) until ctx, bounded by the step timeout, ends.
// Drivers are idempotent on the instance id, so running a step again after
// a crash mid-call is safe. Any other error fails the step at once.
func (e *Executor) run(ctx context.Context, d driver.Driver, op instance.Op, rec store.Record, log *stepLog) error {
	wait := 100 * time.Millisecond
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := call(ctx, d, op, rec)
		if err == nil || !errors.Is(err, driver.ErrUnavailable) {
			return err
		}
		log.get().Warn("executor: driver unavailable; retrying the step", "op", op, "attempt", attempt, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return fmt.Errorf("driver unavailable for %v (step timeout): %w", time.Since(start).Round(time.Millisecond), err)
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// call is the one place a driver operation becomes a driver call.
func call(ctx context.Context, d driver.Driver, op instance.Op, rec store.Record) error {
	st, t := rec.State, rec.Transition
	switch op {
	case instance.OpSpawn:
		return d.Spawn(ctx, driver.Spec{ID: st.ID, Name: st.Name, Flavor: flavor(st.Flavor), Image: image(st.Image)})
	case instance.OpDestroy:
		if err := d.Destroy(ctx, st.ID); err != nil && !errors.Is(err, driver.ErrNotFound) {
			return err
		}
		return nil // already gone is what delete wants
	case instance.OpPowerOff:
		return d.PowerOff(ctx, st.ID)
	case instance.OpPowerOn:
		return d.PowerOn(ctx, st.ID)
	case instance.OpReboot:
		return d.Reboot(ctx, st.ID, false)
	case instance.OpHardReboot:
		return d.Reboot(ctx, st.ID, true)
	case instance.OpRebuild:
		r, ok := d.(driver.Rebuilder)
		if !ok {
			return fmt.Errorf("%w: rebuild", driver.ErrUnsupported)
		}
		img := st.Image
		if t.Image != nil {
			img = *t.Image
		}
		return r.Rebuild(ctx, st.ID, image(img))
	case instance.OpResizeQueue, instance.OpResizePrepare, instance.OpResizeFinish:
		r, ok := d.(driver.Resizer)
		if !ok {
			return fmt.Errorf("%w: resize", driver.ErrUnsupported)
		}
		if t.Flavor == nil {
			return fmt.Errorf("resize transition without a target flavor")
		}
		step := map[instance.Op]driver.ResizeStep{
			instance.OpResizeQueue: driver.ResizeQueue, instance.OpResizePrepare: driver.ResizePrepare, instance.OpResizeFinish: driver.ResizeFinish,
		}[op]
		return r.Resize(ctx, st.ID, step, flavor(*t.Flavor))
	case instance.OpConfirmResize:
		r, ok := d.(driver.Resizer)
		if !ok {
			return fmt.Errorf("%w: confirm resize", driver.ErrUnsupported)
		}
		return r.ConfirmResize(ctx, st.ID)
	case instance.OpRevertResize:
		r, ok := d.(driver.Resizer)
		if !ok {
			return fmt.Errorf("%w: revert resize", driver.ErrUnsupported)
		}
		if st.OldFlavor == nil {
			return fmt.Errorf("revert resize of %s: the record keeps no old flavor", st.ID)
		}
		return r.RevertResize(ctx, st.ID, flavor(*st.OldFlavor))
	}
	return fmt.Errorf("%w: operation %q", driver.ErrUnsupported, op)
}

func flavor(f instance.Flavor) driver.Flavor {
	return driver.Flavor{Name: f.ID, VCPUs: f.VCPUs, RAMMB: f.RAMMB, DiskGB: f.DiskGB}
}

func image(i instance.Image) driver.Image {
	return driver.Image{ID: i.ID, Name: i.Name, Source: i.Source, DiskFormat: i.DiskFormat}
}
