// Package feed lets a node's requests wait for an instance to settle
// without polling, from the node's one watch of the instances: the
// executor's (core/executor), which hands the Feed every list and event
// (Feed implements executor.Observer), fanned out in process to the
// waiters of each instance (Settled). The Feed also keeps the node's
// store.View up to date from them, before it tells any waiter.
//
// A waiter subscribes before it looks at the instance, so no change
// between its look and its subscription is missed, and answers from the
// record the watch event carries (store.TransitionEvent.Record) instead
// of reading again. Each waiter holds a buffer of one notice and keeps
// only the newest, so a slow waiter never holds up the watch or the
// others; it needs only the newest anyway, since an event's record is the
// whole instance. When the watch breaks (compaction, etcd trouble) the
// executor lists again and watches from the list's revision; on that list
// the Feed has every waiter read its instance again, so what changed
// while no watch ran is not missed.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
)

// Feed fans one watch out to the requests waiting on instances. It is
// safe for concurrent use; the watch feeding it (an executor.Observer's
// source, the executor's Run) must be running for waiters to hear of
// changes (without it they wait until their context ends, or Close).
type Feed struct {
	store  *store.Store
	view   *store.View // nil: none kept
	logger *slog.Logger

	stop    sync.Once
	stopped chan struct{} // closed by Close: waiters stop waiting

	mu   sync.Mutex
	subs map[string]map[*waiter]struct{} // by instance id
}

// ErrStopped is what Settled returns, with the newest record it knows,
// when the Feed stops (Close: the node is shutting down) before the
// instance settled.
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

// send replaces whatever notice w has not taken yet with n, unless that
// is an event newer than n: the executor's own writes (Wrote) can come
// ahead of older watch events. Senders hold Feed.mu, so after the drain
// there is room.
func (w *waiter) send(n notice) {
	select {
	case old := <-w.ch:
		if !old.resync && !n.resync && old.ev.Revision > n.ev.Revision {
			n = old
		}
	default:
	}
	select {
	case w.ch <- n:
	default:
	}
}

// New returns a Feed over s that keeps view (nil: none) up to date; give
// it to the node's executor as its Observer. A nil logger discards.
func New(s *store.Store, view *store.View, logger *slog.Logger) *Feed {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{store: s, view: view, logger: logger, subs: map[string]map[*waiter]struct{}{}, stopped: make(chan struct{})}
}

// Close stops every waiter (ErrStopped), so a server shutting down is not
// held by its long-polls; later Settled calls still answer an instance
// that is settled, and stop at once otherwise. Safe to call more than
// once.
func (f *Feed) Close() {
	f.stop.Do(func() { close(f.stopped) })
}

// Listed takes a list the watch resumes after (executor.Observer): the
// View becomes the listed records, then every waiter reads its instance
// again, since what changed while no watch ran brought no event. Waiters
// read at or after the list's revision; the watch delivers every change
// after it. Nothing falls between.
func (f *Feed) Listed(recs []store.Record, rev int64) {
	if f.view != nil {
		f.view.Reset(recs, rev)
	}
	f.broadcast()
}

// Observe takes a watch event (executor.Observer): the View first, then
// the waiters of its instance, so a waiter that finds a transition in the
// View is sure to hear of the event that ends it.
func (f *Feed) Observe(ev store.TransitionEvent) {
	if f.view != nil {
		f.view.Apply(ev)
	}
	f.publish(ev)
}

// Wrote takes a record a write of this node's executor left, confirmed
// by etcd, before the watch brings that write back (executor.Observer):
// the View advances to it and the instance's waiters hear of it at once.
// A waiter answered from it answers from a write etcd committed, as it
// would from the watch's event for the same revision, which it then
// ignores as old news. It saves each action's answer the watch's lag:
// several goroutine hand-offs inside etcd and its client, which on a busy
// node were part of every action's latency.
func (f *Feed) Wrote(rec store.Record) {
	if rec.Err != nil || rec.StateRev == 0 {
		return
	}
	if f.view != nil {
		f.view.Advance(rec)
	}
	f.publish(store.TransitionEvent{ID: rec.State.ID, Transition: rec.Transition, Revision: revision(rec), Record: &rec})
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
//
// Its first look is at the View when that shows a transition in flight:
// the settle is then still ahead, and the waiter hears of it, since it
// subscribed before looking and the View is updated before waiters are
// told (Observe), and a list resynchronises it (Listed). A View that
// shows the instance settled, or has no entry, is not trusted: the
// caller's own action may not have reached it yet, and answering
// "settled" from it would be a lie; then Settled reads etcd
// linearizably.
func (f *Feed) Settled(ctx context.Context, id string) (store.Record, error) {
	return f.SettledSince(ctx, id, store.Record{})
}

// SettledSince is Settled for a caller that has just written the
// instance itself: wrote is the record its guarded write left (a
// transition in flight, at its revision). Where the View has not caught
// up with that write yet (it holds an older record of the instance, or,
// for an instance just created, none while it is not Through the write's
// revision), it needs no read either: the View is updated in revision
// order before waiters are told, so every later change, the settle among
// them, is still to be told, and the waiter, subscribed before it looked,
// will hear it. A zero wrote is Settled.
func (f *Feed) SettledSince(ctx context.Context, id string, wrote store.Record) (store.Record, error) {
	w := f.subscribe(id)
	defer f.unsubscribe(id, w)
	var rec store.Record
	known := false
	if f.view != nil {
		var inView bool
		rec, inView = f.view.Get(id)
		switch mine := revision(wrote); {
		case inView && mine > 0 && revision(rec) < mine:
			rec, known = wrote, true // the View is behind the caller's own write
		case inView:
			// Settled only if it shows the caller's write or a later one.
			known = rec.Transition != nil || mine > 0 && revision(rec) >= mine
		case mine > 0 && f.view.Through() < mine:
			// Not held, and not reached: a new instance (a create) whose
			// write the watch has yet to bring. No later change, a delete
			// included, can have passed the waiter by either.
			rec, known = wrote, true
		}
	}
	if !known {
		var err error
		if rec, err = f.store.Get(ctx, id); err != nil {
			return store.Record{}, err
		}
	}
	for rec.Transition != nil && rec.Err == nil {
		known := revision(rec)
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
			// The watch is behind the read (or the View's record): old
			// news.
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

// revision is the newest revision a record was read or written at.
func revision(rec store.Record) int64 { return max(rec.StateRev, rec.TransitionRev) }
