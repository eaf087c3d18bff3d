package feed_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/executor"
	"github.com/lucid-project/lucid/core/feed"
	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

func building(t *testing.T, s *store.Store, id string) store.Record {
	t.Helper()
	now := time.Now().UTC()
	st := instance.State{ID: id, Name: id, VMState: instance.Building, PowerState: instance.NoState, Node: "n1", CreatedAt: now, UpdatedAt: now}
	tr := instance.Transition{Action: instance.ActionCreate, RequestID: "req-" + id, Steps: []instance.Status{instance.StatusBuild}, Target: instance.StatusActive, Node: "n1"}
	rec, err := s.Commit(context.Background(), store.Record{}, store.Change{ID: id, State: &st, Transition: &tr,
		History: &instance.HistoryRecord{At: now, To: instance.StatusBuild, Action: instance.ActionCreate, Cause: instance.CauseAPI}})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func activate(t *testing.T, s *store.Store, rec store.Record) store.Record {
	t.Helper()
	st := rec.State
	st.VMState = instance.Active
	next, err := s.Commit(context.Background(), rec, store.Change{ID: st.ID, State: &st,
		History: &instance.HistoryRecord{At: time.Now(), From: instance.StatusBuild, To: instance.StatusActive, Action: instance.ActionCreate, Cause: instance.CauseDriver}})
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// watch runs the node's one watch of the instances, the executor's,
// feeding f until the returned stop is called (or the test ends). The
// executor is node n2's: it carries out none of these instances' (node
// n1's) transitions, so the test alone moves them.
func watch(t *testing.T, s *store.Store, f *feed.Feed) (stop func()) {
	t.Helper()
	ex := executor.New(executor.Config{Store: s, Recorder: lifecycle.NewRecorder(lifecycle.RecorderConfig{Store: s}), Node: "n2", Observer: f})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ex.Run(ctx)
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

type result struct {
	rec store.Record
	err error
}

func settled(f *feed.Feed, ctx context.Context, id string) chan result {
	ch := make(chan result, 1)
	go func() {
		rec, err := f.Settled(ctx, id)
		ch <- result{rec, err}
	}()
	return ch
}

func await(t *testing.T, ch chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Settled did not return")
		return result{}
	}
}

// TestSettledFromTheEvent: a waiter on a transition in flight is answered
// with the record of the write that ended it.
func TestSettledFromTheEvent(t *testing.T) {
	s := testenv.Store(t)
	f := feed.New(s, nil, nil)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	watch(t, s, f)
	rec := building(t, s, "a")
	ch := settled(f, ctx, "a")
	testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
	active := activate(t, s, rec)
	r := await(t, ch)
	if r.err != nil || r.rec.Transition != nil || r.rec.StateRev != active.StateRev || r.rec.State.VMState != instance.Active {
		t.Fatalf("Settled = %+v, %v; want ACTIVE at %d", r.rec, r.err, active.StateRev)
	}
	if f.Waiting() != 0 {
		t.Fatalf("%d waiters left", f.Waiting())
	}
	// Settled already: at once.
	if r, err := f.Settled(ctx, "a"); err != nil || r.StateRev != active.StateRev {
		t.Fatalf("Settled of a settled instance = %+v, %v", r, err)
	}
	if _, err := f.Settled(ctx, "nope"); !errors.Is(err, instance.ErrNotFound) {
		t.Fatalf("Settled of an unknown instance: %v, want ErrNotFound", err)
	}
}

// TestSettledAcrossAWatchGap: a change made while no watch runs (here,
// before the executor starts; likewise between a broken watch and the
// list after it) is not missed: the list a watch starts from makes every
// waiter read again.
func TestSettledAcrossAWatchGap(t *testing.T) {
	s := testenv.Store(t)
	f := feed.New(s, nil, nil)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	rec := building(t, s, "b")
	ch := settled(f, ctx, "b")
	testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
	active := activate(t, s, rec) // no watch sees this
	watch(t, s, f)
	if r := await(t, ch); r.err != nil || r.rec.StateRev != active.StateRev || r.rec.Transition != nil {
		t.Fatalf("Settled = %+v, %v; want ACTIVE at %d", r.rec, r.err, active.StateRev)
	}
	// Stopping the feed releases its waiters with what they know.
	rec2 := building(t, s, "c")
	ch = settled(f, context.Background(), "c")
	testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
	f.Close()
	if r := await(t, ch); !errors.Is(r.err, feed.ErrStopped) || r.rec.TransitionRev != rec2.TransitionRev {
		t.Fatalf("Settled after stop = %+v, %v; want the BUILD record and ErrStopped", r.rec, r.err)
	}
}

// TestViewBeforeWaiters: the Feed keeps the node's View from the watch,
// and updates it before it tells a waiter, so by the time a waiter hears
// of a write the View holds that write's record; a list (the watch's
// start) replaces the View, dropping what no longer exists.
func TestViewBeforeWaiters(t *testing.T) {
	s := testenv.Store(t)
	v := store.NewView(0)
	v.Apply(store.TransitionEvent{ID: "ghost", Revision: 1, Record: &store.Record{State: instance.State{ID: "ghost"}, StateRev: 1}})
	f := feed.New(s, v, nil)
	ctx := context.Background()
	rec := building(t, s, "v")
	watch(t, s, f)
	testenv.Eventually(t, 10*time.Second, func() bool { _, ok := v.Get("v"); return ok }, "the list never reached the View")
	if got, _ := v.Get("v"); got.TransitionRev != rec.TransitionRev || got.Transition == nil {
		t.Fatalf("the View holds %+v, want the listed BUILD record at %d", got, rec.TransitionRev)
	}
	if _, ok := v.Get("ghost"); ok {
		t.Fatal("the list left an instance that does not exist in the View")
	}
	for range 3 {
		rec = building(t, s, "w"+rec.State.ID)
		// With the BUILD record in the View, Settled waits for the event
		// without reading: its answer is the event's.
		testenv.Eventually(t, 10*time.Second, func() bool { r, ok := v.Get(rec.State.ID); return ok && r.Transition != nil }, "the View never saw BUILD")
		ch := settled(f, ctx, rec.State.ID)
		testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
		active := activate(t, s, rec)
		if r := await(t, ch); r.err != nil || r.rec.StateRev != active.StateRev {
			t.Fatalf("Settled = %+v, %v", r.rec, r.err)
		}
		// Told, so the View already has it: no polling here.
		if got, ok := v.Get(rec.State.ID); !ok || got.StateRev != active.StateRev || got.Transition != nil {
			t.Fatalf("a waiter heard of %d before the View: it holds %+v (%v)", active.StateRev, got, ok)
		}
	}
}

// TestSettledLooksAtTheView: a long-poll takes its first look from the
// View only when it shows a transition in flight (no read; the settle is
// ahead and the waiter hears of it); a View that shows the instance
// settled, or nothing, is read past, so a View behind the caller's own
// action never answers "settled" for it.
func TestSettledLooksAtTheView(t *testing.T) {
	for _, tc := range []struct {
		name string
		// view is what the View holds when Settled looks, given the
		// instance's BUILD record; nil: no entry.
		view func(build store.Record) *store.Record
		// watchFirst starts the watch before Settled looks (it fills the
		// View); otherwise after, and its list makes the waiter read again.
		watchFirst bool
		wantReads  int64
	}{
		{"in flight in the View", nil, true, 0},
		{"no entry", nil, false, 2},
		{"settled in the View, in flight in etcd", func(build store.Record) *store.Record {
			old := build
			old.Transition, old.TransitionRev = nil, 0
			old.State.VMState = instance.Active
			return &old
		}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f, v, reads := viewed(t)
			ctx := context.Background()
			build := building(t, s, "x")
			if tc.view != nil {
				held := tc.view(build)
				v.Reset([]store.Record{*held}, max(held.StateRev, held.TransitionRev))
			}
			if tc.watchFirst {
				watch(t, s, f)
				testenv.Eventually(t, 10*time.Second, func() bool { r, ok := v.Get("x"); return ok && r.Transition != nil }, "the View never saw BUILD")
			}
			ch := settled(f, ctx, "x")
			testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
			if !tc.watchFirst {
				testenv.Eventually(t, 10*time.Second, func() bool { return reads.Load() >= 1 }, "the waiter never read")
				watch(t, s, f)
				testenv.Eventually(t, 10*time.Second, func() bool { return reads.Load() >= 2 }, "the waiter never read again on the list")
			}
			select {
			case r := <-ch:
				t.Fatalf("Settled answered %+v, %v while BUILD is in flight", r.rec, r.err)
			default:
			}
			active := activate(t, s, build)
			if r := await(t, ch); r.err != nil || r.rec.StateRev != active.StateRev || r.rec.Transition != nil {
				t.Fatalf("Settled = %+v, %v; want ACTIVE at %d", r.rec, r.err, active.StateRev)
			}
			if n := reads.Load(); n != tc.wantReads {
				t.Fatalf("Settled sent %d reads, want %d", n, tc.wantReads)
			}
		})
	}
}

// SettledSince, right after the caller's own write: a View behind that
// write needs no read (the settle is still to be told), a View at or past
// it answers alone; no entry needs no read while the View has not reached
// the write (a create the watch has yet to bring), and is read as Settled
// reads once it has (the instance was deleted since, or evicted).
func TestSettledSinceTheCallersWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		// view is the View's entry given the caller's write (BUILD) and
		// the ACTIVE record that settles it; nil: no entry.
		view func(build, active store.Record) *store.Record
		// through is the revision the View is through, for no entry (an
		// entry's View is through the entry's revision).
		through func(build, active store.Record) int64
		// answered: SettledSince answers before the settle is told (from
		// the View, or from its read of etcd, which already has it).
		answered  bool
		wantReads int64
	}{
		{"the View is behind the write", func(build, _ store.Record) *store.Record {
			old := build
			old.Transition, old.TransitionRev, old.StateRev = nil, 0, build.StateRev-1
			old.State.VMState = instance.Active
			return &old
		}, nil, false, 0},
		{"the View has the write", func(build, _ store.Record) *store.Record { return &build }, nil, false, 0},
		{"the View has the settle", func(_, active store.Record) *store.Record { return &active }, nil, true, 0},
		{"no entry, the View not at the write yet", nil, func(build, _ store.Record) int64 { return build.StateRev - 1 }, false, 0},
		{"no entry, the View past the write: read, and etcd has the settle", nil, func(_, active store.Record) int64 { return active.StateRev }, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f, v, reads := viewed(t)
			ctx := context.Background()
			build := building(t, s, "x")
			active := activate(t, s, build)
			if tc.view != nil {
				held := tc.view(build, active)
				v.Reset([]store.Record{*held}, max(held.StateRev, held.TransitionRev))
			} else {
				v.Reset(nil, tc.through(build, active))
			}
			ch := make(chan result, 1)
			go func() {
				rec, err := f.SettledSince(ctx, "x", build)
				ch <- result{rec, err}
			}()
			if !tc.answered {
				testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
				select {
				case r := <-ch:
					t.Fatalf("SettledSince answered %+v, %v before the settle was told", r.rec, r.err)
				default:
				}
				// As the watch would: the settle, View first.
				f.Observe(store.TransitionEvent{ID: "x", Revision: active.StateRev, Record: &active})
			}
			if r := await(t, ch); r.err != nil || r.rec.StateRev != active.StateRev || r.rec.Transition != nil {
				t.Fatalf("SettledSince = %+v, %v; want ACTIVE at %d", r.rec, r.err, active.StateRev)
			}
			if n := reads.Load(); n != tc.wantReads {
				t.Fatalf("SettledSince sent %d reads, want %d", n, tc.wantReads)
			}
		})
	}
}

// TestSettledSinceACreateDeletedMeanwhile: a waiter that trusted its own
// create because the View had not reached it still hears of a delete
// that comes before the settle, and answers not found.
func TestSettledSinceACreateDeletedMeanwhile(t *testing.T) {
	s, f, v, reads := viewed(t)
	build := building(t, s, "x")
	v.Reset(nil, build.StateRev-1)
	ch := make(chan result, 1)
	go func() {
		rec, err := f.SettledSince(context.Background(), "x", build)
		ch <- result{rec, err}
	}()
	testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
	// As the watch would: the create, then its delete.
	f.Observe(store.TransitionEvent{ID: "x", Revision: build.TransitionRev, Transition: build.Transition, Record: &build})
	f.Observe(store.TransitionEvent{ID: "x", Revision: build.TransitionRev + 1, Gone: true})
	if r := await(t, ch); !errors.Is(r.err, instance.ErrNotFound) {
		t.Fatalf("SettledSince = %+v, %v; want ErrNotFound", r.rec, r.err)
	}
	if n := reads.Load(); n != 0 {
		t.Fatalf("SettledSince sent %d reads, want 0", n)
	}
}

// viewed starts an etcd member and returns a Store on it for the test's
// own writes, and a Feed with a View of its own whose reads of etcd are
// counted.
func viewed(t *testing.T) (*store.Store, *feed.Feed, *store.View, *atomic.Int64) {
	t.Helper()
	m := testenv.Etcd(t)
	const prefix = "/lucid-feed-view-test"
	fs, reads := testenv.ReadCountingStore(t, m, prefix)
	v := store.NewView(0)
	return store.New(m.Client(), prefix), feed.New(fs, v, nil), v, reads
}

// TestWroteAnswersAheadOfTheWatch: the executor's own write (Wrote)
// answers a waiter with no watch running at all, advances the View, and
// the watch's later event for the same write (and an older one arriving
// after it) is old news that changes nothing.
func TestWroteAnswersAheadOfTheWatch(t *testing.T) {
	s, f, v, reads := viewed(t)
	ctx := context.Background()
	rec := building(t, s, "w")
	f.Listed([]store.Record{rec}, rec.TransitionRev) // as a watch starting would: the View holds it in flight
	ch := settled(f, ctx, "w")
	testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
	active := activate(t, s, rec)
	f.Wrote(active)
	r := await(t, ch)
	if r.err != nil || r.rec.StateRev != active.StateRev || r.rec.Transition != nil {
		t.Fatalf("Settled = %+v, %v; want ACTIVE at %d from the write", r.rec, r.err, active.StateRev)
	}
	if n := reads.Load(); n != 0 {
		t.Fatalf("the waiter read etcd %d times, want 0 (the View showed the create in flight)", n)
	}
	if got, ok := v.Get("w"); !ok || got.StateRev != active.StateRev {
		t.Fatalf("the View holds %+v (%v), want the write at %d", got, ok, active.StateRev)
	}
	// The watch catches up, with the older event first.
	f.Observe(store.TransitionEvent{ID: "w", Revision: rec.TransitionRev, Transition: rec.Transition, Record: &rec})
	f.Observe(store.TransitionEvent{ID: "w", Revision: active.StateRev, Record: &active})
	if got, _ := v.Get("w"); got.StateRev != active.StateRev || got.Transition != nil {
		t.Fatalf("after the watch's old news the View holds %+v, want ACTIVE at %d", got, active.StateRev)
	}
}
