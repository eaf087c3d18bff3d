package policy

import (
	"errors"
	"sync/atomic"
)

// Stats are a Module's counters since it was loaded. They only grow, so
// each maps onto a Prometheus counter labelled with the policy's name and
// hook (and the failure kind or recycling reason).
type Stats struct {
	Name string
	Hook Hook
	// Calls counts Validate or Reconcile calls, failed ones included.
	Calls uint64
	// Failures counts the calls that failed, each under one kind.
	Failures Failures
	// Instances counts the instances started, the first one included.
	Instances uint64
	// Recycled counts sound instances retired by budget after a call.
	Recycled Recycled
	// Discarded counts instances thrown away because a call on them, or
	// their start, failed.
	Discarded uint64
	// LogLinesDropped counts guest output lines over the log budget.
	LogLinesDropped uint64
}

// Failures counts failed calls by kind. A call that failed in several ways
// counts once, under the first kind that applies in this order.
type Failures struct {
	Memory      uint64 // the guest ran out of memory (ErrMemory)
	Trap        uint64 // any other trap or exit (ErrTrap)
	Timeout     uint64 // ErrTimeout, the caller's own deadline included
	BadResponse uint64 // ErrBadResponse
	Guest       uint64 // the guest reported its own failure (ErrGuest)
	Refused     uint64 // the host did not call the policy (ErrRequest, ErrConfig)
	Unavailable uint64 // ErrClosed, or no instance before the caller's context ended
}

// Recycled counts instances retired by budget, by reason.
type Recycled struct {
	Calls  uint64 // served Config.MaxCalls calls
	Memory uint64 // linear memory above Config.MaxMemoryMiB
}

// counters are the live form of Stats.
type counters struct {
	calls, instances, discarded   atomic.Uint64
	recycledCalls, recycledMemory atomic.Uint64
	memory, trap, timeout         atomic.Uint64
	badResponse, guest, refused   atomic.Uint64
	unavailable                   atomic.Uint64
}

// fail counts a failed call under its kind.
func (c *counters) fail(err error) {
	switch {
	case errors.Is(err, ErrMemory):
		c.memory.Add(1)
	case errors.Is(err, ErrTrap):
		c.trap.Add(1)
	case errors.Is(err, ErrTimeout):
		c.timeout.Add(1)
	case errors.Is(err, ErrBadResponse):
		c.badResponse.Add(1)
	case errors.Is(err, ErrGuest):
		c.guest.Add(1)
	case errors.Is(err, ErrRequest), errors.Is(err, ErrConfig):
		c.refused.Add(1)
	default:
		c.unavailable.Add(1)
	}
}

// Stats returns the module's counters. It is safe to call at any time,
// also after Close; the fields are read one by one, so a snapshot taken
// during calls may be a few counts apart between fields.
func (m *Module) Stats() Stats {
	c := &m.stats
	return Stats{
		Name:      m.cfg.Name,
		Hook:      m.cfg.Hook,
		Calls:     c.calls.Load(),
		Instances: c.instances.Load(),
		Discarded: c.discarded.Load(),
		Failures: Failures{
			Memory: c.memory.Load(), Trap: c.trap.Load(), Timeout: c.timeout.Load(),
			BadResponse: c.badResponse.Load(), Guest: c.guest.Load(), Refused: c.refused.Load(),
			Unavailable: c.unavailable.Load(),
		},
		Recycled:        Recycled{Calls: c.recycledCalls.Load(), Memory: c.recycledMemory.Load()},
		LogLinesDropped: m.logs.droppedTotal(),
	}
}
