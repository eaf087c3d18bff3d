package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/core/store/embedded"
	"github.com/lucid-project/lucid/internal/testenv"
)

// holdingKV passes every request to the member's own KV service, records
// the transactions sent, and, once armed, holds the next transaction
// until released: the commits that arrive meanwhile queue behind it, as
// they do behind any commit in flight.
type holdingKV struct {
	pb.KVClient
	armed   atomic.Bool
	held    chan struct{} // closed when the held transaction has arrived
	release chan struct{}

	mu   sync.Mutex
	sent []*pb.TxnRequest
}

func newHoldingKV(kv pb.KVClient) *holdingKV {
	return &holdingKV{KVClient: kv, held: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdingKV) Txn(ctx context.Context, in *pb.TxnRequest, opts ...grpc.CallOption) (*pb.TxnResponse, error) {
	h.mu.Lock()
	h.sent = append(h.sent, in)
	h.mu.Unlock()
	if h.armed.CompareAndSwap(true, false) {
		close(h.held)
		<-h.release
	}
	return h.KVClient.Txn(ctx, in, opts...)
}

// sentSince returns the transactions sent after the first n.
func (h *holdingKV) sentSince(n int) []*pb.TxnRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*pb.TxnRequest(nil), h.sent[n:]...)
}

// bothWays runs test on the two ways a Store reaches etcd, each on a
// fresh member and with its commits going through h: an embedded
// member's own KV service, and a client opened on the member's endpoint,
// as for a cluster.
func bothWays(t *testing.T, test func(t *testing.T, s *store.Store, h *holdingKV)) {
	for _, way := range []struct {
		name string
		open func(m *embedded.Member, prefix string) (*store.Store, error)
	}{
		{"embedded", func(m *embedded.Member, prefix string) (*store.Store, error) {
			return store.New(m.Client(), prefix).WithKV(m.KV()), nil
		}},
		{"endpoints", func(m *embedded.Member, prefix string) (*store.Store, error) {
			return store.Open(context.Background(), store.Config{Endpoints: []string{m.ClientURL()}, Prefix: prefix})
		}},
	} {
		t.Run(way.name, func(t *testing.T) {
			s, err := way.open(testenv.Etcd(t), fmt.Sprintf("/lucid-test-%d", time.Now().UnixNano()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			var h *holdingKV
			s.WrapGroupKV(func(kv pb.KVClient) pb.KVClient { h = newHoldingKV(kv); return h })
			test(t, s, h)
		})
	}
}

// rename is a status-preserving change of base: a new name and a history
// record saying so.
func rename(base store.Record, name string) store.Change {
	st := base.State
	st.Name, st.UpdatedAt = name, time.Now().UTC()
	return store.Change{ID: st.ID, State: &st, Transition: base.Transition,
		History: &instance.HistoryRecord{At: st.UpdatedAt, From: base.Status(), To: base.Status(), Message: "renamed " + name}}
}

type outcome struct {
	rec store.Record
	err error
}

// commitAsync commits ch on base in its own goroutine.
func commitAsync(ctx context.Context, s *store.Store, base store.Record, ch store.Change) <-chan outcome {
	out := make(chan outcome, 1)
	go func() {
		rec, err := s.Commit(ctx, base, ch)
		out <- outcome{rec, err}
	}()
	return out
}

// TestGroupedCommitsDecideAlone: commits queued behind one in flight go
// to etcd in one request, yet each lands or fails exactly as it would
// alone: its own guard decides, a stale member changes nothing and fails
// no other, the members that land share a revision (and the watch
// carries each one's record at it), and two commits to one instance never
// share a request, so the second's guard sees the first.
func TestGroupedCommitsDecideAlone(t *testing.T) { bothWays(t, groupedCommitsDecideAlone) }

func groupedCommitsDecideAlone(t *testing.T, s *store.Store, h *holdingKV) {
	ctx := context.Background()
	recs := map[string]store.Record{}
	for _, id := range []string{"a", "b", "c", "d"} {
		recs[id] = create(t, s, id)
	}
	staleC := recs["c"]
	if _, err := s.Commit(ctx, staleC, rename(staleC, "moved-on")); err != nil {
		t.Fatal(err)
	}
	cNow, _ := s.Get(ctx, "c")
	before, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := len(h.sentSince(0))

	h.armed.Store(true)
	held := commitAsync(ctx, s, recs["a"], rename(recs["a"], "a1"))
	<-h.held
	queued := map[string]<-chan outcome{}
	for _, q := range []struct {
		name string
		base store.Record
	}{
		{"b1", recs["b"]},
		{"c-stale", staleC},
		{"d", recs["d"]},
		{"a2", recs["a"]}, // the base the held commit is about to change
		{"b2", recs["b"]}, // the same instance as b1, on the same base
	} {
		queued[q.name] = commitAsync(ctx, s, q.base, rename(q.base, q.name))
		want := len(queued)
		testenv.Eventually(t, 5*time.Second, func() bool { return s.Queued() == want }, "%s not queued", q.name)
	}
	close(h.release)
	a1 := <-held
	got := map[string]outcome{}
	for name, ch := range queued {
		got[name] = <-ch
	}

	if a1.err != nil {
		t.Fatalf("held commit: %v", a1.err)
	}
	for _, name := range []string{"b1", "d"} {
		if got[name].err != nil {
			t.Fatalf("%s: %v, want it landed", name, got[name].err)
		}
	}
	if rb, rd := got["b1"].rec.StateRev, got["d"].rec.StateRev; rb != rd || rb <= a1.rec.StateRev {
		t.Fatalf("b1 landed at %d and d at %d after the held commit's %d: want one revision, later", rb, rd, a1.rec.StateRev)
	}
	for _, name := range []string{"c-stale", "a2", "b2"} {
		if !errors.Is(got[name].err, store.ErrStale) {
			t.Fatalf("%s: %v, want ErrStale", name, got[name].err)
		}
	}
	for id, want := range map[string]struct {
		name    string
		rev     int64
		history int
	}{
		"a": {"a1", a1.rec.StateRev, 2},
		"b": {"b1", got["b1"].rec.StateRev, 2},
		"c": {"moved-on", cNow.StateRev, 2},
		"d": {"d", got["d"].rec.StateRev, 2},
	} {
		rec, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State.Name != want.name || rec.StateRev != want.rev || len(h) != want.history {
			t.Fatalf("%s holds %q at %d with %d history records, want %q at %d with %d", id, rec.State.Name, rec.StateRev, len(h), want.name, want.rev, want.history)
		}
	}

	// What went to etcd: the held commit alone, then one group of the
	// four queued commits to distinct instances, then b2 alone.
	reqs := h.sentSince(sent)
	if st := s.CommitStats(); st != (store.CommitStats{Requests: 4, Commits: 7}) {
		t.Errorf("commit stats %+v, want 4 requests carrying 7 commits (c's rename, the held one, the group of 4, b2)", st)
	}
	if len(reqs) != 3 {
		t.Fatalf("%d transactions sent, want 3 (the held one, a group, b2)", len(reqs))
	}
	if n := len(reqs[1].Success); n != 4 || len(reqs[1].Compare) != 0 || reqs[1].Success[0].GetRequestTxn() == nil {
		t.Fatalf("second request has %d operations and %d compares, want a group of 4 nested transactions", n, len(reqs[1].Compare))
	}
	if reqs[2].Success[0].GetRequestTxn() != nil || len(reqs[2].Compare) != 2 {
		t.Fatalf("third request is a group, want b2's own transaction")
	}

	// The watch carries each landed member's own record at the shared
	// revision.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := map[string]store.TransitionEvent{}
	err = s.WatchTransitions(wctx, before, func(ev store.TransitionEvent) {
		seen[ev.ID] = ev
		if len(seen) == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("watch: %v", err)
	}
	for _, id := range []string{"b", "d"} {
		ev := seen[id]
		if ev.Record == nil || ev.Revision != got["b1"].rec.StateRev || ev.Record.StateRev != ev.Revision || ev.Record.State.ID != id {
			t.Fatalf("watch event of %s: %+v, want its own record at the group's revision %d", id, ev, got["b1"].rec.StateRev)
		}
	}
}

// TestQueuedCommitCancelled: a commit whose context ends while it waits
// behind another is never sent: the caller is told so and the instance
// keeps its record.
func TestQueuedCommitCancelled(t *testing.T) { bothWays(t, queuedCommitCancelled) }

func queuedCommitCancelled(t *testing.T, s *store.Store, h *holdingKV) {
	a, e := create(t, s, "a"), create(t, s, "e")
	sent := len(h.sentSince(0))

	h.armed.Store(true)
	held := commitAsync(context.Background(), s, a, rename(a, "a1"))
	<-h.held
	ctx, cancel := context.WithCancel(context.Background())
	queued := commitAsync(ctx, s, e, rename(e, "e1"))
	testenv.Eventually(t, 5*time.Second, func() bool { return s.Queued() == 1 }, "e not queued")
	cancel()
	if out := <-queued; !errors.Is(out.err, context.Canceled) {
		t.Fatalf("queued commit: %v, want context.Canceled", out.err)
	}
	if n := s.Queued(); n != 0 {
		t.Fatalf("%d commits still queued after the cancelled one left", n)
	}
	close(h.release)
	if out := <-held; out.err != nil {
		t.Fatal(out.err)
	}
	got, err := s.Get(context.Background(), "e")
	if err != nil {
		t.Fatal(err)
	}
	if got.StateRev != e.StateRev || got.State.Name != e.State.Name {
		t.Fatalf("e holds %q at %d, want its create's record at %d", got.State.Name, got.StateRev, e.StateRev)
	}
	if n := len(h.sentSince(sent)); n != 1 {
		t.Fatalf("%d transactions sent, want only the held one", n)
	}
}

// TestConcurrentCommitsAllLand: many writers, each on its own instance,
// all land, whatever groups they shared; each instance ends as its last
// commit said, with every history record in order.
func TestConcurrentCommitsAllLand(t *testing.T) { bothWays(t, concurrentCommitsAllLand) }

func concurrentCommitsAllLand(t *testing.T, s *store.Store, _ *holdingKV) {
	ctx := context.Background()
	const writers, each = 16, 25
	var wg sync.WaitGroup
	last := make([]store.Record, writers)
	errs := make([]error, writers)
	for w := range writers {
		id := fmt.Sprintf("w%d", w)
		rec := create(t, s, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if rec, errs[w] = s.Commit(ctx, rec, rename(rec, fmt.Sprint(i))); errs[w] != nil {
					return
				}
			}
			last[w] = rec
		}()
	}
	wg.Wait()
	for w := range writers {
		id := fmt.Sprintf("w%d", w)
		if errs[w] != nil {
			t.Fatalf("%s: %v", id, errs[w])
		}
		got, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.StateRev != last[w].StateRev || got.State.Name != fmt.Sprint(each-1) {
			t.Fatalf("%s holds %q at %d, want %q at %d", id, got.State.Name, got.StateRev, fmt.Sprint(each-1), last[w].StateRev)
		}
		h, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != each+1 {
			t.Fatalf("%s has %d history records, want %d", id, len(h), each+1)
		}
		for i, r := range h {
			if r.Seq != int64(i+1) {
				t.Fatalf("%s: history record %d has seq %d", id, i, r.Seq)
			}
		}
	}
}
