package feed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/feed"
	"github.com/lucid-project/lucid/core/instance"
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
	f := feed.New(s, nil)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go f.Run(ctx)
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
// before Run starts; likewise between a broken watch and the next) is
// not missed: starting a watch makes every waiter read again.
func TestSettledAcrossAWatchGap(t *testing.T) {
	s := testenv.Store(t)
	f := feed.New(s, nil)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	rec := building(t, s, "b")
	ch := settled(f, ctx, "b")
	testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
	active := activate(t, s, rec) // no watch sees this
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	if r := await(t, ch); r.err != nil || r.rec.StateRev != active.StateRev || r.rec.Transition != nil {
		t.Fatalf("Settled = %+v, %v; want ACTIVE at %d", r.rec, r.err, active.StateRev)
	}
	// Stopping the feed releases its waiters with what they know.
	rec2 := building(t, s, "c")
	ch = settled(f, context.Background(), "c")
	testenv.Eventually(t, 10*time.Second, func() bool { return f.Waiting() == 1 }, "no waiter")
	stop()
	<-done
	if r := await(t, ch); !errors.Is(r.err, feed.ErrStopped) || r.rec.TransitionRev != rec2.TransitionRev {
		t.Fatalf("Settled after stop = %+v, %v; want the BUILD record and ErrStopped", r.rec, r.err)
	}
}
