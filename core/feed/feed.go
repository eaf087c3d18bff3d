// Package feed lets a node's requests wait for an instance to settle
// without polling: one etcd watch of every instance's transition per node
// (Run), fanned out in process to the waiters of each instance (Settled).
//
// A waiter subscribes before it reads the instance, so no change between
// its read and its subscription is missed, and answers from the record
// the watch event carries (store.TransitionEvent.Record) instead of
// reading again. Each waiter holds a buffer of one notice and keeps only
// the newest, so a slow waiter never holds up the watch or the others;
// it needs only the newest anyway, since an event's record is the whole
// instance. When the watch breaks (compaction, etcd trouble) Run starts a
// new one from etcd's current revision and has every waiter read its
// instance again, so what changed while no watch ran is not missed.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
)

// Feed fans one watch out to the requests waiting on instances. It is
// safe for concurrent use; Run must be running for waiters to hear of
// changes (without it they wait until their context ends).
type Feed struct {
	store  *store.Store
	logger *slog.Logger

	stopped chan struct{} // closed when Run returns: waiters stop waiting

	mu   sync.Mutex
	subs map[string]map[*waiter]struct{} // by instance id
}

// ErrStopped is what Settled returns, with the newest record it knows,
// when the Feed stops (Run returned: the node is shutting down) before
// the instance settled.
var ErrStopped = errors.New("feed stopped")

// waiter is one Settled call's subscription.
type waiter struct {
	ch chan notice // buffer 1: the newest notice
}

// notice is what a waiter hears: an event of its instance, or (resync)
// that the watch restarted and its instance must be read again.
type notice struct {
	ev     store.TransitionEvent
	resync bool
}

// send replaces whatever notice w has not taken yet with n. Only Run's
// goroutine sends (under Feed.mu), so after the drain there is room.
func (w *waiter) send(n notice) {
	select {
	case <-w.ch:
	default:
	}
	select {
	case w.ch <- n:
	default:
	}
}

// New returns a Feed over s; start Run to feed it. A nil logger
// discards.
func New(s *store.Store, logger *slog.Logger) *Feed {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{store: s, logger: logger, subs: map[string]map[*waiter]struct{}{}, stopped: make(chan struct{})}
}

// Run watches every instance's transition until ctx ends, restarting the
// watch from etcd's current revision whenever it breaks (after a second's
// pause, or at once after a compaction) and then telling every waiter to
// read its instance again. It returns nil when ctx ends, and then every
// waiter stops waiting (ErrStopped), so a server shutting down is not held
// by its long-polls. Call it once.
func (f *Feed) Run(ctx context.Context) error {
	defer close(f.stopped)
	for {
		rev, err := f.store.Revision(ctx)
		if err == nil {
			// Waiters read again at or after rev; the watch below
			// delivers every change after it. Nothing falls between.
			f.broadcast()
			err = f.store.WatchTransitions(ctx, rev, f.publish)
		}
		if ctx.Err() != nil {
			return nil
		}
		f.logger.Warn("feed: watch ended; starting another", "err", err)
		if !errors.Is(err, store.ErrCompacted) {
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

// publish hands ev to the waiters of its instance.
func (f *Feed) publish(ev store.TransitionEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.subs[ev.ID] {
		w.send(notice{ev: ev})
	}
}

// broadcast tells every waiter to read its instance again.
func (f *Feed) broadcast() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ws := range f.subs {
		for w := range ws {
			w.send(notice{resync: true})
		}
	}
}

func (f *Feed) subscribe(id string) *waiter {
	w := &waiter{ch: make(chan notice, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[id] == nil {
		f.subs[id] = map[*waiter]struct{}{}
	}
	f.subs[id][w] = struct{}{}
	return w
}

func (f *Feed) unsubscribe(id string, w *waiter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs[id], w)
	if len(f.subs[id]) == 0 {
		delete(f.subs, id)
	}
}

// Waiting is how many Settled calls are waiting now, over all instances:
// every call leaves when it returns.
func (f *Feed) Waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ws := range f.subs {
		n += len(ws)
	}
	return n
}

// Settled returns instance id as soon as it has no transition in flight:
// at once if it has none now, else when the write that ends the
// transition is seen, from that write's record (no second read). A
// deleted instance, or one deleted while waiting, is instance.ErrNotFound.
// When it stops waiting before that (ctx ends, the Feed stops:
// ErrStopped, a read fails), it returns the newest record it knows (the
// transition still set) with the error, so a caller with a deadline can
// answer with it; an error with a zero record (StateRev 0) means it knows
// none. An unreadable record (Record.Err) is returned as it is: it cannot
// be told to settle.
func (f *Feed) Settled(ctx context.Context, id string) (store.Record, error) {
	w := f.subscribe(id)
	defer f.unsubscribe(id, w)
	rec, err := f.store.Get(ctx, id)
	if err != nil {
		return store.Record{}, err
	}
	for rec.Transition != nil && rec.Err == nil {
		known := max(rec.StateRev, rec.TransitionRev)
		var n notice
		select {
		case <-ctx.Done():
			return rec, ctx.Err()
		case <-f.stopped:
			return rec, ErrStopped
		case n = <-w.ch:
		}
		switch {
		case !n.resync && n.ev.Revision <= known:
			// The watch is behind the read: old news.
		case n.ev.Gone:
			return store.Record{}, fmt.Errorf("%w: instance %s was deleted", instance.ErrNotFound, id)
		case n.ev.Record != nil:
			rec = *n.ev.Record
		default:
			// Resynchronise, or a write that carried no record.
			next, err := f.store.Get(ctx, id)
			if errors.Is(err, instance.ErrNotFound) {
				return store.Record{}, err
			}
			if err != nil {
				return rec, err
			}
			rec = next
		}
	}
	return rec, nil
}
