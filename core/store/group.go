package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Group commit (internal/throughput/RATIONALE.md, lever 21). Most of a
// status change's cost in etcd is paid per request, not per key: the
// request's way through the KV service, its raft entry (marshalled,
// appended, written to the WAL), its apply (trace, backend lock, watch
// notification) and the wake-up of its caller. So while one commit is in
// flight, the commits that arrive queue, and the next request carries all
// of them that touch disjoint keys, each as a nested transaction of its
// own: etcd evaluates every nested transaction's compares against the
// revision before the group, before it applies any write, and each decides
// its own branch only. A member therefore lands or fails exactly as it
// would alone; the members that land share one revision and one raft
// entry.
//
// Members must not share a key: a compare would miss another member's
// write to it (the pair could both succeed, which no order of the two
// alone allows), and etcd refuses a request that writes a key twice. Two
// commits to one instance are sent in different groups, in the order they
// came, and the second's guard sees the first.
//
// etcd refuses a whole request past --max-txn-ops (128 by default,
// counting the group's own list against each member's) or
// --max-request-bytes (1.5 MiB by default), so groups are bounded well
// below both: groupMax members of at most six operations, and
// groupMaxBytes of keys and values unless one member alone is larger
// (it is then sent alone, as it would be without grouping).
const (
	groupMax      = 32
	groupMaxBytes = 256 << 10
)

// grouper sends guarded transactions to etcd's KV service (an embedded
// member's own, or the stub on a cluster client's connection) with at
// most one request in flight, grouping what queues behind it. A transaction
// that arrives while nothing is in flight goes at once, alone, so an idle
// store adds no latency.
type grouper struct {
	kv pb.KVClient

	mu       sync.Mutex
	queue    []*member
	inFlight bool

	requests, commits atomic.Uint64 // sent so far (CommitStats)
}

// CommitStats counts what a Store's guarded commits cost in requests.
type CommitStats struct {
	// Requests is how many requests carried commits to etcd, each one
	// commit or a group of them; Commits is how many commits they
	// carried, lost guards included. Commits/Requests is the mean group.
	Requests, Commits uint64
}

// CommitStats returns the counts since s was made. Commits that also
// change a project's usage, which go alone and by another way, are not
// among them.
func (s *Store) CommitStats() CommitStats {
	if s.group == nil {
		return CommitStats{}
	}
	return CommitStats{Requests: s.group.requests.Load(), Commits: s.group.commits.Load()}
}

// sent counts one request carrying n commits.
func (g *grouper) sent(n int) {
	g.requests.Add(1)
	g.commits.Add(uint64(n))
}

// member is one transaction waiting in a grouper.
type member struct {
	ctx   context.Context
	req   *pb.TxnRequest
	keys  []string // every key it compares or writes
	bytes int      // its keys' and values' length
	done  chan struct{}
	resp  *pb.TxnResponse
	err   error
}

// txn runs req, whose compares and writes touch exactly keys, of bytes
// length in all. Its answer is etcd's, as for req alone; when ctx ends
// first, ctx.Err(), and req was either never sent or may still land, as
// after any request cancelled in flight.
func (g *grouper) txn(ctx context.Context, req *pb.TxnRequest, keys []string, bytes int) (*pb.TxnResponse, error) {
	g.mu.Lock()
	if !g.inFlight {
		g.inFlight = true
		g.mu.Unlock()
		g.sent(1)
		resp, err := g.kv.Txn(ctx, req)
		g.next()
		return resp, err
	}
	m := &member{ctx: ctx, req: req, keys: keys, bytes: bytes, done: make(chan struct{})}
	g.queue = append(g.queue, m)
	g.mu.Unlock()
	select {
	case <-m.done:
		return m.resp, m.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	i := slices.Index(g.queue, m)
	if i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1) // never sent, and now never will be
	}
	g.mu.Unlock()
	if i < 0 {
		select {
		case <-m.done: // its group has answered after all
			return m.resp, m.err
		default:
		}
	}
	return nil, ctx.Err()
}

// next sends, in a group, what queued while a request was in flight, or
// marks the grouper idle.
func (g *grouper) next() {
	g.mu.Lock()
	group := g.take()
	if len(group) == 0 {
		g.inFlight = false
	}
	g.mu.Unlock()
	if len(group) > 0 {
		go g.send(group)
	}
}

// take removes from the queue, in their order, the members whose keys are
// disjoint from those taken before them, within the group's bounds.
// Members whose context has ended are left for txn to remove. g.mu is
// held.
func (g *grouper) take() []*member {
	var group []*member
	var taken map[string]struct{}
	size := 0
	rest := g.queue[:0]
	for _, m := range g.queue {
		full := len(group) == groupMax || len(group) > 0 && size+m.bytes > groupMaxBytes
		if full || m.ctx.Err() != nil || overlaps(taken, m.keys) {
			rest = append(rest, m)
			continue
		}
		if taken == nil {
			taken = make(map[string]struct{}, 4*len(g.queue))
		}
		for _, k := range m.keys {
			taken[k] = struct{}{}
		}
		group = append(group, m)
		size += m.bytes
	}
	clear(g.queue[len(rest):])
	g.queue = rest
	return group
}

func overlaps(taken map[string]struct{}, keys []string) bool {
	for _, k := range keys {
		if _, ok := taken[k]; ok {
			return true
		}
	}
	return false
}

// send runs group as one request, gives each member its own answer, then
// sends what queued meanwhile.
func (g *grouper) send(group []*member) {
	defer g.next()
	g.sent(len(group))
	if len(group) == 1 {
		m := group[0]
		m.resp, m.err = g.kv.Txn(m.ctx, m.req)
		close(m.done)
		return
	}
	// The request lives while any member still waits for it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(group[0].ctx))
	defer cancel()
	var waiting atomic.Int32
	waiting.Store(int32(len(group)))
	req := &pb.TxnRequest{Success: make([]*pb.RequestOp, len(group))}
	for i, m := range group {
		stop := context.AfterFunc(m.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
		req.Success[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: m.req}}
	}
	resp, err := g.kv.Txn(ctx, req)
	if err == nil && len(resp.Responses) != len(group) {
		err = fmt.Errorf("store: a group of %d transactions got %d answers", len(group), len(resp.Responses))
	}
	for i, m := range group {
		if err != nil {
			m.err = err
		} else {
			// A nested answer carries no header of its own; the
			// revision is the group's.
			m.resp = resp.Responses[i].GetResponseTxn()
			m.resp.Header = resp.Header
		}
		close(m.done)
	}
}
