package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
)

func create(t *testing.T, s *store.Store, id string) store.Record {
	t.Helper()
	now := time.Now().UTC()
	st := instance.State{ID: id, Name: "vm-" + id, VMState: instance.Building, PowerState: instance.NoState, Node: "n1", CreatedAt: now, UpdatedAt: now}
	tr := instance.Transition{Action: instance.ActionCreate, RequestID: "req-" + id, Steps: []instance.Status{instance.StatusBuild}, Target: instance.StatusActive, Node: "n1"}
	rec, err := s.Commit(context.Background(), store.Record{}, store.Change{
		ID: id, State: &st, Transition: &tr,
		History: &instance.HistoryRecord{At: now, To: instance.StatusBuild, Action: instance.ActionCreate, Cause: instance.CauseAPI, RequestID: tr.RequestID},
	})
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	return rec
}

func TestCommitAndGet(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	rec := create(t, s, "a")
	got, err := s.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status() != instance.StatusBuild || got.StateRev != rec.StateRev || got.TransitionRev != rec.TransitionRev {
		t.Fatalf("got %+v status %s, want BUILD at revs %d/%d", got, got.Status(), rec.StateRev, rec.TransitionRev)
	}
	if got.State.HistorySeq != 1 {
		t.Fatalf("history seq = %d, want 1", got.State.HistorySeq)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, instance.ErrNotFound) {
		t.Fatalf("Get unknown: %v, want ErrNotFound", err)
	}
}

func TestCreateTwiceIsStale(t *testing.T) {
	s := testenv.Store(t)
	create(t, s, "a")
	st := instance.State{ID: "a", VMState: instance.Active}
	_, err := s.Commit(context.Background(), store.Record{}, store.Change{ID: "a", State: &st})
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("second create: %v, want ErrStale", err)
	}
	got, _ := s.Get(context.Background(), "a")
	if got.State.VMState != instance.Building {
		t.Fatalf("lost CAS changed the state to %s", got.State.VMState)
	}
}

// A writer holding an old read must lose, and lose completely: neither
// state, transition nor history may change.
func TestStaleWriteChangesNothing(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	old := create(t, s, "a")
	// Someone else finishes the create.
	done := old.State
	done.VMState = instance.Active
	done.PowerState = instance.Running
	if _, err := s.Commit(ctx, old, store.Change{ID: "a", State: &done, History: &instance.HistoryRecord{From: instance.StatusBuild, To: instance.StatusActive}}); err != nil {
		t.Fatal(err)
	}
	// The stale writer tries to move the instance to ERROR.
	bad := old.State
	bad.VMState = instance.Error
	_, err := s.Commit(ctx, old, store.Change{ID: "a", State: &bad, History: &instance.HistoryRecord{From: instance.StatusBuild, To: instance.StatusError}})
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale commit: %v, want ErrStale", err)
	}
	got, _ := s.Get(ctx, "a")
	if got.Status() != instance.StatusActive || got.Transition != nil {
		t.Fatalf("after stale write: status %s transition %v", got.Status(), got.Transition)
	}
	h, err := s.History(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[1].To != instance.StatusActive {
		t.Fatalf("history = %+v, want 2 records ending ACTIVE", h)
	}
}

func TestDeleteKeepsHistory(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	rec := create(t, s, "a")
	if _, err := s.Commit(ctx, rec, store.Change{ID: "a", History: &instance.HistoryRecord{From: instance.StatusBuild, To: instance.StatusDeleted, Action: instance.ActionDelete}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, instance.ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	h, _ := s.History(ctx, "a")
	var seqs []int64
	var tos []instance.Status
	for _, r := range h {
		seqs = append(seqs, r.Seq)
		tos = append(tos, r.To)
	}
	if len(h) != 2 || seqs[0] != 1 || seqs[1] != 2 || tos[1] != instance.StatusDeleted {
		t.Fatalf("history seqs %v tos %v", seqs, tos)
	}
	list, _, err := s.List(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("List after delete = %v, %v", list, err)
	}
}

// Concurrent writers from the same read: exactly one wins.
func TestConcurrentCommitsOneWins(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	base := create(t, s, "a")
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := base.State
			st.Name = "writer"
			_, errs[i] = s.Commit(ctx, base, store.Change{ID: "a", State: &st, Transition: base.Transition,
				History: &instance.HistoryRecord{From: instance.StatusBuild, To: instance.StatusBuild, Message: "writer"}})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrStale):
			t.Fatalf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers won, want exactly 1", wins)
	}
	h, _ := s.History(ctx, "a")
	if len(h) != 2 {
		t.Fatalf("history has %d records, want 2", len(h))
	}
}

// TestWatchTransitions checks that each transition event carries the
// record its write left, with the revisions a guarded Commit compares,
// so a watcher can write on it without reading; and that a delete says
// the instance is gone.
func TestWatchTransitions(t *testing.T) {
	s := testenv.Store(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rev, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan store.TransitionEvent, 10)
	done := make(chan error, 1)
	go func() { done <- s.WatchTransitions(ctx, rev, func(e store.TransitionEvent) { events <- e }) }()
	created := create(t, s, "w")
	st := created.State
	st.VMState = instance.Active
	active, err := s.Commit(ctx, created, store.Change{ID: "w", State: &st,
		History: &instance.HistoryRecord{At: time.Now(), From: instance.StatusBuild, To: instance.StatusActive, Action: instance.ActionCreate, Cause: instance.CauseDriver}})
	if err != nil {
		t.Fatal(err)
	}
	e1 := <-events
	if e1.ID != "w" || e1.Transition == nil || e1.Transition.Action != instance.ActionCreate || e1.Gone || e1.Revision != created.StateRev {
		t.Fatalf("first event %+v, want the create transition at %d", e1, created.StateRev)
	}
	if r := e1.Record; r == nil || r.Err != nil || r.StateRev != created.StateRev || r.TransitionRev != created.TransitionRev ||
		r.State.ID != "w" || r.State.VMState != instance.Building || r.State.HistorySeq != 1 || r.Transition != e1.Transition {
		t.Fatalf("first event's record %+v, want BUILD as written at %d/%d", r, created.StateRev, created.TransitionRev)
	}
	e2 := <-events
	if e2.ID != "w" || e2.Transition != nil || e2.Gone || e2.Revision != active.StateRev {
		t.Fatalf("second event %+v, want transition removed at %d", e2, active.StateRev)
	}
	if r := e2.Record; r == nil || r.StateRev != active.StateRev || r.TransitionRev != 0 || r.Transition != nil ||
		r.State.VMState != instance.Active || r.State.HistorySeq != 2 {
		t.Fatalf("second event's record %+v, want ACTIVE at %d, no transition", r, active.StateRev)
	}
	// The event's record is a valid base: a guarded write on it lands.
	st = e2.Record.State
	st.Name = "renamed"
	if _, err := s.Commit(ctx, *e2.Record, store.Change{ID: "w", State: &st}); err != nil {
		t.Fatalf("commit on the event's record: %v", err)
	}
	// A state-only write changes no transition: no event. The delete
	// (begun and ended in two writes) says gone on its second event.
	got, err := s.Get(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	del := instance.Transition{Action: instance.ActionDelete, RequestID: "req-del", Steps: []instance.Status{instance.StatusDeleting}, Target: instance.StatusDeleted, Node: "n1"}
	st = got.State
	deleting, err := s.Commit(ctx, got, store.Change{ID: "w", State: &st, Transition: &del,
		History: &instance.HistoryRecord{At: time.Now(), From: instance.StatusActive, To: instance.StatusDeleting, Action: instance.ActionDelete, Cause: instance.CauseAPI}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, deleting, store.Change{ID: "w",
		History: &instance.HistoryRecord{At: time.Now(), From: instance.StatusDeleting, To: instance.StatusDeleted, Action: instance.ActionDelete, Cause: instance.CauseDriver}}); err != nil {
		t.Fatal(err)
	}
	if e3 := <-events; e3.Transition == nil || e3.Transition.Action != instance.ActionDelete || e3.Record == nil || e3.Record.State.Name != "renamed" {
		t.Fatalf("third event %+v, want the delete transition over the renamed state", e3)
	}
	if e4 := <-events; e4.Transition != nil || !e4.Gone || e4.Record != nil {
		t.Fatalf("fourth event %+v, want gone", e4)
	}
	// A write of the transition key alone (Lucid makes none) has no record.
	if err := s.PutRaw(ctx, "instances/lone/transition", `{"action":"stop","request_id":"r","node":"n1"}`); err != nil {
		t.Fatal(err)
	}
	if e5 := <-events; e5.ID != "lone" || e5.Transition == nil || e5.Record != nil || e5.Gone {
		t.Fatalf("fifth event %+v, want a transition without record", e5)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v", err)
	}
}

// storeLosingAnswer returns a store on a fresh member whose first
// transaction after armed is set goes through etcd, but whose answer is
// lost: cancel runs (it ends the caller's context) and the caller gets
// only the context's error, as when a context ends in flight.
func storeLosingAnswer(t *testing.T, cancel context.CancelFunc) (*store.Store, *atomic.Bool) {
	t.Helper()
	armed := new(atomic.Bool)
	s, _ := testenv.ReadCountingStoreKV(t, testenv.Etcd(t), "/lucid", func(kv clientv3.KV) clientv3.KV {
		return testenv.AfterTxn(kv, func(ctx context.Context, resp *clientv3.TxnResponse, err error) (*clientv3.TxnResponse, error) {
			if !armed.CompareAndSwap(true, false) || err != nil {
				return resp, err // not the write under test, or it failed anyway
			}
			cancel()
			return nil, ctx.Err()
		})
	})
	return s, armed
}

// TestAdoptWhoseContextEndsInFlight: an adoption that etcd applied is
// reported as made even when the adopter's context ended before the
// answer came (a reconciler stopping mid-write), so the caller knows the
// node now owns the step, as the watch tells every other reader.
func TestAdoptWhoseContextEndsInFlight(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, armed := storeLosingAnswer(t, cancel)
	rec := create(t, s, "x") // owned by n1, which is not registered
	armed.Store(true)
	adopted, err := s.Adopt(ctx, rec, "n2", time.Now().UTC())
	if err != nil {
		t.Fatalf("Adopt = %v; etcd applied it, want it reported", err)
	}
	got, err := s.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if got.Transition.Node != "n2" || adopted.Transition.Node != "n2" || got.TransitionRev != adopted.TransitionRev {
		t.Fatalf("Adopt reported %+v at %d, etcd holds %+v at %d", adopted.Transition, adopted.TransitionRev, got.Transition, got.TransitionRev)
	}
}

func TestRegisterAndAdopt(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	r1, err := s.Register(ctx, store.NodeInfo{Name: "n1", Drivers: []store.DriverInfo{{Name: "fake", Capabilities: []string{"resize"}}}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	info, ok, err := s.Node(ctx, "n1")
	if err != nil || !ok || info.Name != "n1" {
		t.Fatalf("Node(n1) = %+v, %v, %v", info, ok, err)
	}
	if d, ok := info.Driver("fake"); !ok || d.Capabilities[0] != "resize" {
		t.Fatalf("driver info %+v", info.Drivers)
	}
	rec := create(t, s, "x") // owned by n1
	now := time.Now().UTC()
	if _, err := s.Adopt(ctx, rec, "n2", now); !errors.Is(err, store.ErrNodeAlive) {
		t.Fatalf("adopt from a live node: %v, want ErrNodeAlive", err)
	}
	if got, _ := s.Get(ctx, "x"); got.Transition.Node != "n1" || got.TransitionRev != rec.TransitionRev {
		t.Fatalf("refused adoption changed the transition: %+v", got.Transition)
	}
	// The owner's lease ends: its key goes, and its work may be adopted.
	if err := r1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Node(ctx, "n1"); ok {
		t.Fatal("n1 still registered after Close")
	}
	adopted, err := s.Adopt(ctx, rec, "n2", now)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, "x")
	if got.Transition.Node != "n2" || got.State.Node != "n2" || got.TransitionRev != adopted.TransitionRev ||
		got.Transition.Attempt != rec.Transition.Attempt+1 || !got.Transition.StepStartedAt.Equal(now) {
		t.Fatalf("after adoption: %+v %+v", got.State, got.Transition)
	}
	// Adoption is not a status change: no history record.
	if h, _ := s.History(ctx, "x"); len(h) != 1 {
		t.Fatalf("adoption wrote history: %+v", h)
	}
	// A second adopter holding the old read loses.
	if _, err := s.Adopt(ctx, rec, "n3", now); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale adoption: %v, want ErrStale", err)
	}
}

// One garbage record must not take down reads: it is reported as
// unreadable, the others are returned, and nobody writes over it.
func TestUnreadableRecord(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	create(t, s, "good")
	if err := s.PutRaw(ctx, "instances/bad/state", "{not json"); err != nil {
		t.Fatal(err)
	}
	list, _, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List with one garbage record: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("List = %d records, want 2", len(list))
	}
	var bad store.Record
	for _, r := range list {
		if r.State.ID == "bad" {
			bad = r
		} else if r.Err != nil {
			t.Fatalf("good record marked unreadable: %v", r.Err)
		}
	}
	if !errors.Is(bad.Err, store.ErrUnreadable) || bad.Status() != instance.StatusError {
		t.Fatalf("bad record: %+v, status %s", bad, bad.Status())
	}
	got, err := s.Get(ctx, "bad")
	if err != nil || !errors.Is(got.Err, store.ErrUnreadable) {
		t.Fatalf("Get(bad) = %+v, %v", got, err)
	}
	st := instance.State{ID: "bad", VMState: instance.Active}
	if _, err := s.Commit(ctx, got, store.Change{ID: "bad", State: &st}); !errors.Is(err, store.ErrUnreadable) {
		t.Fatalf("commit over an unreadable record: %v", err)
	}
}

// A change that is not a status change (a flag, an invisible step's
// transition) writes no history record and keeps the sequence.
func TestCommitWithoutHistory(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	rec := create(t, s, "a")
	st := rec.State
	st.Flags = []instance.Flag{{Kind: "power_mismatch", Message: "x"}}
	next, err := s.Commit(ctx, rec, store.Change{ID: "a", State: &st, Transition: rec.Transition})
	if err != nil {
		t.Fatal(err)
	}
	if next.State.HistorySeq != 1 {
		t.Fatalf("seq %d after a flag, want 1", next.State.HistorySeq)
	}
	if h, _ := s.History(ctx, "a"); len(h) != 1 {
		t.Fatalf("history %+v", h)
	}
	if _, err := s.Commit(ctx, next, store.Change{ID: "a"}); err == nil {
		t.Fatal("a delete without history was accepted")
	}
}

// Unmanaged VMs are listed cluster-wide and vanish with the node that saw
// them.
func TestUnmanagedVMs(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	r1, _ := s.Register(ctx, store.NodeInfo{Name: "n1"}, 5*time.Second)
	r2, _ := s.Register(ctx, store.NodeInfo{Name: "n2"}, 5*time.Second)
	defer r2.Close(ctx)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, u := range []store.Unmanaged{
		{Node: "n1", Driver: "fake", ID: "vm-a", Power: "running", Since: now},
		{Node: "n1", Driver: "fake", ID: "vm-b", Power: "shutdown", Since: now},
	} {
		if err := r1.PutUnmanaged(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	r2.PutUnmanaged(ctx, store.Unmanaged{Node: "n2", Driver: "fake", ID: "vm-c", Since: now})
	list := func() (ids []string) {
		us, err := s.UnmanagedVMs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			ids = append(ids, u.Node+"/"+u.ID)
		}
		return ids
	}
	if got := fmt.Sprint(list()); got != "[n1/vm-a n1/vm-b n2/vm-c]" {
		t.Fatalf("unmanaged %s", got)
	}
	s.DeleteUnmanaged(ctx, "n1", "fake", "vm-a")
	if got := fmt.Sprint(list()); got != "[n1/vm-b n2/vm-c]" {
		t.Fatalf("after delete %s", got)
	}
	r1.Close(ctx)
	if got := fmt.Sprint(list()); got != "[n2/vm-c]" {
		t.Fatalf("after n1 left %s", got)
	}
}

// One leader at a time; when it steps down another candidate takes over.
func TestLeadElection(t *testing.T) {
	s := testenv.Store(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type term struct {
		who  string
		done chan struct{}
	}
	leading := make(chan term, 4)
	var wg sync.WaitGroup
	cancels := map[string]context.CancelFunc{}
	for _, who := range []string{"a", "b"} {
		cctx, ccancel := context.WithCancel(ctx)
		cancels[who] = ccancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Lead(cctx, "chores", who, 2*time.Second, func(lctx context.Context) {
				done := make(chan struct{})
				leading <- term{who, done}
				<-lctx.Done()
				close(done)
			})
		}()
	}
	first := <-leading
	if got, err := s.Leader(ctx, "chores"); err != nil || got != first.who {
		t.Fatalf("Leader = %q, %v; want %q", got, err, first.who)
	}
	select {
	case second := <-leading:
		t.Fatalf("%s leads while %s does", second.who, first.who)
	case <-time.After(300 * time.Millisecond):
	}
	cancels[first.who]()
	<-first.done
	second := <-leading
	if second.who == first.who {
		t.Fatalf("%s led twice", second.who)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		got, _ := s.Leader(ctx, "chores")
		return got == second.who
	}, "leader never became %s", second.who)
	cancel()
	wg.Wait()
}

// A commit whose context ends while its transaction is in flight (a
// client that hung up, a replaced step) tells whether etcd applied it,
// instead of reporting a change that was made as not made.
func TestCommitWhoseContextEndsInFlight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		applied bool // etcd applied the write before the context ended
	}{
		{"ended after etcd applied it", true},
		{"ended before it was sent", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, armed := storeLosingAnswer(t, cancel)
			rec := create(t, s, "a")
			st := rec.State
			st.VMState, st.UpdatedAt = instance.Active, time.Now().UTC()
			ch := store.Change{ID: "a", State: &st, History: &instance.HistoryRecord{At: st.UpdatedAt, From: instance.StatusBuild, To: instance.StatusActive, Cause: instance.CauseDriver}}
			armed.Store(true)
			if !tc.applied {
				cancel()
			}
			next, err := s.Commit(ctx, rec, ch)
			got, gerr := s.Get(context.Background(), "a")
			if gerr != nil {
				t.Fatal(gerr)
			}
			if tc.applied {
				if err != nil {
					t.Fatalf("Commit = %v; the write was applied, want it reported", err)
				}
				if next.StateRev != got.StateRev || got.Status() != instance.StatusActive || next.Transition != nil {
					t.Fatalf("Commit reported %+v (status %s), etcd holds %+v (status %s)", next, next.Status(), got, got.Status())
				}
				return
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Commit = %v, want context.Canceled", err)
			}
			if got.StateRev != rec.StateRev || got.Status() != instance.StatusBuild {
				t.Fatalf("etcd holds %+v (status %s), want the create's record unchanged", got, got.Status())
			}
		})
	}
}
