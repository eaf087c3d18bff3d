package reconcile

import (
	"sync"

	"github.com/lucid-project/lucid/sdk/driver"
)

// pending holds the driver events the reconciler has not handled yet,
// only the newest per VM. Events are hints (each is checked against the
// record, and a doubtful one against a fresh Inspect), so an older event
// of a VM with a newer one waiting says nothing the newer does not. Under
// load this keeps the reconciler from working through a backlog of stale
// events, each of which would disagree with a record that has moved on
// and cost an Inspect, and it bounds the backlog by the number of VMs
// instead of blocking the drivers' event streams.
type pending struct {
	mu        sync.Mutex
	newest    map[vmKey]driver.Event
	order     []vmKey // first arrival since the last take
	restarted map[string]bool
	// ready has a token while something is pending.
	ready chan struct{}
}

type vmKey struct{ driver, id string }

type driverEvent struct {
	driver string
	ev     driver.Event
}

func newPending() *pending {
	return &pending{newest: map[vmKey]driver.Event{}, restarted: map[string]bool{}, ready: make(chan struct{}, 1)}
}

// add records ev from driver drv, replacing an older event of its VM.
func (p *pending) add(drv string, ev driver.Event) {
	p.mu.Lock()
	if ev.Kind == driver.EventRestarted {
		p.restarted[drv] = true
	} else {
		k := vmKey{drv, ev.ID}
		if _, ok := p.newest[k]; !ok {
			p.order = append(p.order, k)
		}
		p.newest[k] = ev
	}
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// take returns and forgets everything pending: the drivers whose plugins
// restarted (to be swept whole), then each VM's newest event in the order
// the VMs first appeared.
func (p *pending) take() (restarted []string, events []driverEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d := range p.restarted {
		restarted = append(restarted, d)
	}
	clear(p.restarted)
	events = make([]driverEvent, 0, len(p.order))
	for _, k := range p.order {
		events = append(events, driverEvent{k.driver, p.newest[k]})
	}
	clear(p.newest)
	p.order = p.order[:0]
	return restarted, events
}
