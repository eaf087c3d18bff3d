package driver

import (
	"context"
	"slices"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// SubscriptionBuffer is how many events a Subscribe channel holds for its
// reader.
const SubscriptionBuffer = 1024

// Subscribe returns the driver's events for as long as ctx lasts, across
// plugin restarts: after each restart it reopens the new process's event
// stream and sends a synthetic driver.EventRestarted (events may have
// been lost while the plugin was down, so the reader should look at every
// instance again). Drivers without driver.CapEvents get the restarted
// events only. The channel is closed when ctx ends or the Plugin is
// closed.
//
// Subscribe returns once the current process's stream is open (if the
// plugin is up and has the capability), so a change the hypervisor makes
// after it returns is reported.
//
// A slow reader never holds up the plugin or the supervisor: the channel
// holds SubscriptionBuffer events, and an event that finds it full is
// dropped and counted (DroppedEvents). A restarted event is never dropped:
// it waits for room and goes out before the next event, and restarts that
// happen while one is still waiting are told as that one. Events are hints
// (driver.Event), so a reader that may have missed some should sweep; the
// restarted event tells it when it must.
func (p *Plugin) Subscribe(ctx context.Context) <-chan driver.Event {
	out := make(chan driver.Event, SubscriptionBuffer)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		close(out)
		return out
	}
	gen := p.restarted
	p.subs.Add(1)
	p.mu.Unlock()

	events := p.openEvents(ctx)
	go p.follow(ctx, out, gen, events)
	return out
}

// DroppedEvents is how many events all subscriptions of p dropped because
// their reader was behind (see Subscribe).
func (p *Plugin) DroppedEvents() uint64 { return p.dropped.Load() }

// openEvents opens the current process's event stream, or returns nil when
// the plugin lacks events or the stream cannot be opened now (a restart
// will reopen it).
func (p *Plugin) openEvents(ctx context.Context) <-chan driver.Event {
	p.mu.Lock()
	has := slices.Contains(p.info.Capabilities, driver.CapEvents)
	p.mu.Unlock()
	if !has {
		return nil
	}
	events, err := p.Events(ctx)
	if err != nil {
		p.log.Debug("driver events not open until the next restart", "error", err)
		return nil
	}
	return events
}

// follow feeds one subscription until ctx ends or the Plugin is closed.
// gen is closed when a restarted process takes over; events is the
// current process's stream (nil when there is none).
func (p *Plugin) follow(ctx context.Context, out chan driver.Event, gen <-chan struct{}, events <-chan driver.Event) {
	defer p.subs.Done()
	defer close(out)
	var restarted *driver.Event // waiting for room
	flush := func() {
		if restarted == nil {
			return
		}
		select {
		case out <- *restarted:
			restarted = nil
		default:
		}
	}
	for {
		var pending chan driver.Event // out, while a restarted event waits
		var next driver.Event
		if restarted != nil {
			pending, next = out, *restarted
		}
		select {
		case <-ctx.Done():
			return
		case <-p.stopped.Done():
			return
		case pending <- next:
			restarted = nil
		case <-gen:
			p.mu.Lock()
			gen = p.restarted
			p.mu.Unlock()
			// Open the new stream first, so a change made after the
			// reader sees "restarted" (and sweeps) is reported.
			events = p.openEvents(ctx)
			restarted = &driver.Event{Kind: driver.EventRestarted, At: time.Now()}
			flush()
		case ev, ok := <-events:
			if !ok {
				events = nil // the process exited; gen will say when another runs
				continue
			}
			flush()
			select {
			case out <- ev:
			default:
				p.dropped.Add(1)
			}
		}
	}
}
