package driver

import (
	"context"
	"fmt"
	"slices"

	"github.com/lucid-project/lucid/sdk/driver"
)

// The optional interfaces, forwarded when the plugin reports the matching
// capability. Without it the call fails at once with a *CallError wrapping
// driver.ErrUnsupported and the plugin is not called: Info says what a
// plugin serves, so asking would only cost a round trip.

// unsupported returns the error for a call the plugin lacks, or nil.
func (p *Plugin) unsupported(op, capability string) error {
	p.mu.Lock()
	has := slices.Contains(p.info.Capabilities, capability)
	p.mu.Unlock()
	if has {
		return nil
	}
	return &CallError{Driver: p.name, Op: op, Err: fmt.Errorf("%w: the plugin does not report capability %q", driver.ErrUnsupported, capability)}
}

// optional is call for a method behind capability.
func (p *Plugin) optional(ctx context.Context, op, capability string, fn func(context.Context, *driver.Client) error) error {
	if err := p.unsupported(op, capability); err != nil {
		return err
	}
	return p.call(ctx, op, fn)
}

// Rebuild implements driver.Rebuilder (capability driver.CapRebuild).
func (p *Plugin) Rebuild(ctx context.Context, id string, image driver.Image) error {
	return p.optional(ctx, "Rebuild", driver.CapRebuild, func(ctx context.Context, c *driver.Client) error {
		return c.Rebuild(ctx, id, image)
	})
}

// Resize implements driver.Resizer (capability driver.CapResize).
func (p *Plugin) Resize(ctx context.Context, id string, step driver.ResizeStep, flavor driver.Flavor) error {
	return p.optional(ctx, "Resize", driver.CapResize, func(ctx context.Context, c *driver.Client) error {
		return c.Resize(ctx, id, step, flavor)
	})
}

// ConfirmResize implements driver.Resizer (capability driver.CapResize).
func (p *Plugin) ConfirmResize(ctx context.Context, id string) error {
	return p.optional(ctx, "ConfirmResize", driver.CapResize, func(ctx context.Context, c *driver.Client) error {
		return c.ConfirmResize(ctx, id)
	})
}

// RevertResize implements driver.Resizer (capability driver.CapResize).
func (p *Plugin) RevertResize(ctx context.Context, id string, old driver.Flavor) error {
	return p.optional(ctx, "RevertResize", driver.CapResize, func(ctx context.Context, c *driver.Client) error {
		return c.RevertResize(ctx, id, old)
	})
}

// Events implements driver.EventSource (capability driver.CapEvents) for
// the current plugin process only: the channel is closed when ctx ends or
// that process exits. Subscribe is the subscription that lasts across
// restarts, and what the reconciler wants.
func (p *Plugin) Events(ctx context.Context) (<-chan driver.Event, error) {
	if err := p.unsupported("Events", driver.CapEvents); err != nil {
		return nil, err
	}
	pr, err := p.current()
	if err != nil {
		return nil, &CallError{Driver: p.name, Op: "Events", Err: err}
	}
	sctx, cancel := context.WithCancel(ctx)
	stopOnExit := context.AfterFunc(pr.exited, cancel)
	in, err := pr.drv.Events(sctx)
	if err != nil {
		stopOnExit()
		cancel()
		return nil, p.callError(ctx, "Events", pr, err)
	}
	out := make(chan driver.Event)
	go func() {
		defer close(out)
		defer cancel()
		defer stopOnExit()
		for ev := range in { // closed once sctx ends or the stream breaks
			select {
			case out <- ev:
			case <-sctx.Done():
			}
		}
	}()
	return out, nil
}
