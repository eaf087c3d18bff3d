package policy

import (
	"context"
	"time"
)

// What the policy_test package needs from inside.

// CallRaw sends req, as it is, to the module's hook through the pool, as
// Validate and Reconcile do after encoding, and returns the raw response.
func (m *Module) CallRaw(ctx context.Context, req []byte) ([]byte, error) {
	var out []byte
	err := m.call(ctx, req, func(b []byte) error { out = b; return nil })
	return out, err
}

// IdlePages returns the linear memory size, in 64 KiB pages, of each warm
// instance in the pool.
func (m *Module) IdlePages() []uint32 {
	var gs []*guest
	for {
		select {
		case g := <-m.idle:
			gs = append(gs, g)
			continue
		default:
		}
		break
	}
	pages := make([]uint32, len(gs))
	for i, g := range gs {
		pages[i] = g.mod.Memory().Size() / 65536
		m.idle <- g
	}
	return pages
}

// SetLogClock makes the module's log budget read the time from now, and
// starts it full at that time.
func (m *Module) SetLogClock(now func() time.Time) {
	l := m.logs
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = now
	l.tokens = l.burst
	l.refilled = now()
}
