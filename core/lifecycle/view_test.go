package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/lifecycle"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

// viewEnv is a Service with a View whose etcd reads are counted, beside
// the test's own store and Recorder (standing in for the executor's
// writes) on the same etcd.
type viewEnv struct {
	env   // the test's side
	svc   *lifecycle.Service
	view  *store.View
	reads *atomic.Int64 // the Service's etcd range requests
}

func newViewEnv(t *testing.T) viewEnv {
	t.Helper()
	m := testenv.Etcd(t)
	const prefix = "/lucid-view-test"
	s := store.New(m.Client(), prefix)
	svcStore, reads := testenv.ReadCountingStore(t, m, prefix)
	pol := transitions(t, `{}`)
	rec := lifecycle.NewRecorder(lifecycle.RecorderConfig{Store: s, Validator: pol, Policy: "transitions@test"})
	v := store.NewView(0)
	svc := lifecycle.NewService(lifecycle.Config{Store: svcStore, View: v, Catalog: catalog, Node: "n1", Driver: "fake",
		Recorder: lifecycle.NewRecorder(lifecycle.RecorderConfig{Store: svcStore, Validator: pol, Policy: "transitions@test"})})
	side := env{store: s, rec: rec, svc: lifecycle.NewService(lifecycle.Config{Store: s, Recorder: rec, Catalog: catalog, Node: "n1", Driver: "fake"})}
	return viewEnv{env: side, svc: svc, view: v, reads: reads}
}

// active creates an instance through the test's side and settles it
// ACTIVE.
func (e viewEnv) active(t *testing.T) store.Record {
	t.Helper()
	rec, err := e.env.svc.Create(context.Background(), lifecycle.CreateRequest{Name: "web", FlavorRef: "m1.tiny", ImageRef: "cirros", Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	return settle(t, e.env, rec, instance.Active)
}

// act begins a on rec through the test's side and settles it at vm.
func (e viewEnv) act(t *testing.T, rec store.Record, a instance.Action, vm instance.VMState) (inFlight, settled store.Record) {
	t.Helper()
	inFlight, err := e.env.svc.Begin(context.Background(), rec.State.ID, a, lifecycle.ActionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return inFlight, settle(t, e.env, inFlight, vm)
}

// TestBeginFromTheView: with the node's watch feeding the View, a stop and
// a start through the Service send etcd no read: each action's base is
// the View's record, and its guarded write lands.
func TestBeginFromTheView(t *testing.T) {
	e := newViewEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rev, err := e.store.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watched := make(chan error, 1)
	go func() { watched <- e.store.WatchTransitions(ctx, rev, e.view.Apply) }()
	defer func() { cancel(); <-watched }()

	rec := e.active(t)
	id := rec.State.ID
	for _, step := range []struct {
		action instance.Action
		vm     instance.VMState
	}{{instance.ActionStop, instance.Stopped}, {instance.ActionStart, instance.Active}, {instance.ActionStop, instance.Stopped}} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			r, ok := e.view.Get(id)
			return ok && r.StateRev == rec.StateRev
		}, "the View never saw %s at %d", id, rec.StateRev)
		before := e.reads.Load()
		got, err := e.svc.Begin(ctx, id, step.action, lifecycle.ActionRequest{})
		if err != nil {
			t.Fatalf("%s: %v", step.action, err)
		}
		if n := e.reads.Load() - before; n != 0 {
			t.Fatalf("%s sent %d reads, want 0", step.action, n)
		}
		if got.Transition == nil || got.Transition.Action != step.action {
			t.Fatalf("%s began as %+v", step.action, got.Transition)
		}
		rec = settle(t, e.env, got, step.vm)
	}
}

// TestBeginOnAStaleView: whatever old record the View holds, Begin's
// answer is the one the current record gives: the action lands on it or
// gets the conflict it deserves, never a 409 or 404 made up from the
// View. Only a write the guard proved is answered without a read.
func TestBeginOnAStaleView(t *testing.T) {
	for _, tc := range []struct {
		name string
		// truth moves the instance; view picks the record the View holds.
		truth     func(t *testing.T, e viewEnv, h *history)
		view      func(h history) store.Record
		action    instance.Action
		project   string
		wantErr   error  // nil: the action lands
		wantMsg   string // in the error
		wantReads int64
	}{
		{"current", func(*testing.T, viewEnv, *history) {}, func(h history) store.Record { return h.active },
			instance.ActionStop, "", nil, "", 0},
		{"behind: now allowed (false 409)", stopped, func(h history) store.Record { return h.active },
			instance.ActionStart, "", nil, "", 1},
		{"behind: guard lost, now refused", stopped, func(h history) store.Record { return h.active },
			instance.ActionStop, "", instance.ErrConflict, "while it is SHUTOFF", 1},
		{"in flight in the View, settled now (false 409)", stopped, func(h history) store.Record { return h.stopping },
			instance.ActionStart, "", nil, "", 1},
		{"in flight in the View, settled now, refused", stopped, func(h history) store.Record { return h.stopping },
			instance.ActionStop, "", instance.ErrConflict, "while it is SHUTOFF", 1},
		{"deleted since", deleted, func(h history) store.Record { return h.active },
			instance.ActionStop, "", instance.ErrNotFound, "", 1},
		{"same delete in flight in the View, not now", stopped, func(h history) store.Record { return h.deleting },
			instance.ActionDelete, "", nil, "", 1},
		{"another project", func(*testing.T, viewEnv, *history) {}, func(h history) store.Record { return h.active },
			instance.ActionStop, "q", instance.ErrNotFound, "could not be found", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newViewEnv(t)
			ctx := context.Background()
			h := history{active: e.active(t)}
			// Records the instance never had at once, for the View to
			// hold: a stop in flight and a delete in flight of the
			// ACTIVE record.
			h.stopping = h.active
			h.stopping.Transition = &instance.Transition{Action: instance.ActionStop, RequestID: "req-old", Node: "n1"}
			h.stopping.TransitionRev = h.active.StateRev
			h.deleting = h.stopping
			h.deleting.Transition = &instance.Transition{Action: instance.ActionDelete, RequestID: "req-old", Node: "n1"}
			tc.truth(t, e, &h)
			e.view.Reset([]store.Record{tc.view(h)}, tc.view(h).StateRev)
			id := h.active.State.ID

			before := e.reads.Load()
			got, err := e.svc.Begin(ctx, id, tc.action, lifecycle.ActionRequest{RequestID: "req-new", Project: tc.project})
			if n := e.reads.Load() - before; n != tc.wantReads {
				t.Errorf("Begin sent %d reads, want %d", n, tc.wantReads)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("Begin = %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Begin = %v, want the action to land", err)
			}
			now, err := e.store.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if now.Transition == nil || now.Transition.Action != tc.action || now.Transition.RequestID != "req-new" ||
				got.TransitionRev != now.TransitionRev {
				t.Fatalf("after Begin the record is %+v (Begin answered %+v); want %s of req-new in flight", now.Transition, got.Transition, tc.action)
			}
		})
	}
}

// history holds records an instance had, or that a View may hold of it.
type history struct {
	active, stopping, deleting store.Record
}

// stopped moves the instance from ACTIVE through a stop to SHUTOFF.
func stopped(t *testing.T, e viewEnv, h *history) {
	t.Helper()
	e.act(t, h.active, instance.ActionStop, instance.Stopped)
}

// deleted deletes the instance, as the executor ends a delete.
func deleted(t *testing.T, e viewEnv, h *history) {
	t.Helper()
	ctx := context.Background()
	rec, err := e.env.svc.Begin(ctx, h.active.State.ID, instance.ActionDelete, lifecycle.ActionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rec.Record(ctx, rec, lifecycle.Change{ID: rec.State.ID, Action: instance.ActionDelete,
		Cause: instance.CauseDriver, RequestID: rec.Transition.RequestID}); err != nil {
		t.Fatal(err)
	}
}
