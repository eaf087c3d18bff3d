// Package store keeps Lucid's records in etcd: the key layout, the guarded
// transactions that change an instance's status, history, watches and
// lease-bound node registrations. It is the only package that imports etcd.
//
// Layout under the configured prefix (DESIGN.md section 4):
//
//	instances/<id>/state       settled truth (instance.State)
//	instances/<id>/transition  the action in flight, if any (instance.Transition)
//	history/<id>/<seq>         one record per status change, kept after delete
//	nodes/<node>               lease-bound node registration
//	claims/<id>                lease-bound: the node executing the transition
package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/lucid-project/lucid/core/instance"
)

// ErrStale means a guarded write lost its compare-and-swap: the state or
// the transition changed since they were read. Nothing was written; read
// again and decide again.
var ErrStale = errors.New("stale record: state or transition changed since read")

// Config says how to reach etcd.
type Config struct {
	// Embedded, when set, runs an etcd member in this process.
	Embedded *EmbeddedConfig
	// Endpoints of an etcd cluster, used when Embedded is nil.
	Endpoints []string
	// TLS for Endpoints; nil means plain connections.
	TLS *tls.Config
	// Prefix is prepended to every key, e.g. "/lucid".
	Prefix string
	// DialTimeout bounds connecting to Endpoints; default 5s.
	DialTimeout time.Duration
}

// Store is Lucid's view of etcd. It is safe for concurrent use.
type Store struct {
	cli    *clientv3.Client
	prefix string
	member *Embedded // non-nil when the store owns an embedded member
}

// Open connects to etcd as configured, starting an embedded member first
// when asked. Close releases what Open started.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	prefix := strings.TrimRight(cfg.Prefix, "/")
	if cfg.Embedded != nil {
		m, err := StartEmbedded(ctx, *cfg.Embedded)
		if err != nil {
			return nil, err
		}
		// The in-process client skips gRPC over TCP: about twice the
		// transaction rate of a loopback client (DESIGN.md section 10).
		return &Store{cli: v3client.New(m.etcd.Server), prefix: prefix, member: m}, nil
	}
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("store: no endpoints and no embedded member")
	}
	dt := cfg.DialTimeout
	if dt == 0 {
		dt = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: dt,
		TLS:         cfg.TLS,
		Context:     ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("store: connect %v: %w", cfg.Endpoints, err)
	}
	s := &Store{cli: cli, prefix: prefix}
	// Fail start-up now rather than on the first request.
	sctx, cancel := context.WithTimeout(ctx, dt)
	defer cancel()
	if _, err := cli.Get(sctx, s.key("ping")); err != nil {
		cli.Close()
		return nil, fmt.Errorf("store: reach %v: %w", cfg.Endpoints, err)
	}
	return s, nil
}

// ClientURL is the embedded member's client URL, or "" for a cluster.
func (s *Store) ClientURL() string {
	if s.member == nil {
		return ""
	}
	return s.member.ClientURL()
}

// Close disconnects and stops the embedded member, if any.
func (s *Store) Close() error {
	err := s.cli.Close()
	if errors.Is(err, context.Canceled) {
		// Closing cancels the client's own context; that is not a failure.
		err = nil
	}
	if s.member != nil {
		s.member.Close()
	}
	return err
}

func (s *Store) key(parts ...string) string {
	return s.prefix + "/" + strings.Join(parts, "/")
}

func (s *Store) stateKey(id string) string      { return s.key("instances", id, "state") }
func (s *Store) transitionKey(id string) string { return s.key("instances", id, "transition") }
func (s *Store) historyPrefix(id string) string { return s.key("history", id) + "/" }
func (s *Store) historyKey(id string, seq int64) string {
	return fmt.Sprintf("%s%020d", s.historyPrefix(id), seq)
}

// Record is an instance as read from etcd, with the revisions that guard
// the next write.
type Record struct {
	State      instance.State
	Transition *instance.Transition
	// StateRev and TransitionRev are the keys' ModRevisions; 0 means the
	// key does not exist.
	StateRev      int64
	TransitionRev int64
}

// Status is the record's user-visible status.
func (r Record) Status() instance.Status {
	return instance.Derive(r.State, r.Transition)
}

// Get reads one instance, state and transition in one read. A missing
// instance is instance.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Record, error) {
	if id == "" || strings.Contains(id, "/") {
		return Record{}, fmt.Errorf("%w: %q", instance.ErrNotFound, id)
	}
	resp, err := s.cli.Get(ctx, s.key("instances", id)+"/", clientv3.WithPrefix())
	if err != nil {
		return Record{}, fmt.Errorf("store: get %s: %w", id, err)
	}
	recs, err := s.decode(resp.Kvs)
	if err != nil {
		return Record{}, err
	}
	if len(recs) == 0 || recs[0].StateRev == 0 {
		return Record{}, fmt.Errorf("%w: %s", instance.ErrNotFound, id)
	}
	return recs[0], nil
}

// List reads every instance in one ranged read and returns the revision
// it was read at, so a watch can continue from there without a gap.
func (s *Store) List(ctx context.Context) ([]Record, int64, error) {
	resp, err := s.cli.Get(ctx, s.key("instances")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("store: list: %w", err)
	}
	recs, err := s.decode(resp.Kvs)
	if err != nil {
		return nil, 0, err
	}
	out := recs[:0]
	for _, r := range recs {
		if r.StateRev != 0 {
			out = append(out, r)
		}
	}
	return out, resp.Header.Revision, nil
}

// decode groups state and transition keys (which sort together) into
// records, in key order.
func (s *Store) decode(kvs []*mvccpb.KeyValue) ([]Record, error) {
	var out []Record
	index := map[string]int{}
	base := s.key("instances") + "/"
	for _, kv := range kvs {
		rest := strings.TrimPrefix(string(kv.Key), base)
		id, kind, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		i, seen := index[id]
		if !seen {
			i = len(out)
			index[id] = i
			out = append(out, Record{})
		}
		switch kind {
		case "state":
			if err := json.Unmarshal(kv.Value, &out[i].State); err != nil {
				return nil, fmt.Errorf("store: decode %s: %w", kv.Key, err)
			}
			out[i].StateRev = kv.ModRevision
		case "transition":
			var t instance.Transition
			if err := json.Unmarshal(kv.Value, &t); err != nil {
				return nil, fmt.Errorf("store: decode %s: %w", kv.Key, err)
			}
			out[i].Transition = &t
			out[i].TransitionRev = kv.ModRevision
		}
	}
	return out, nil
}

// Change is one status change: the new state (nil deletes it: the
// instance is gone), the new transition (nil: none in flight) and the
// history record that explains it.
type Change struct {
	ID         string
	State      *instance.State
	Transition *instance.Transition
	History    instance.HistoryRecord
}

// Commit writes a change in one etcd transaction, guarded by the
// ModRevisions in base: state, transition and history change together or
// not at all. The history record's sequence number is allocated here from
// base.State.HistorySeq. Losing the compare is ErrStale. Pass a zero base
// to create an instance (both keys must be absent).
func (s *Store) Commit(ctx context.Context, base Record, ch Change) (Record, error) {
	if ch.ID == "" {
		return Record{}, fmt.Errorf("store: commit without an instance id")
	}
	seq := base.State.HistorySeq + 1
	ch.History.Seq = seq
	ops := make([]clientv3.Op, 0, 3)
	var next Record
	if ch.State != nil {
		st := *ch.State
		st.HistorySeq = seq
		b, err := json.Marshal(st)
		if err != nil {
			return Record{}, fmt.Errorf("store: encode state: %w", err)
		}
		ops = append(ops, clientv3.OpPut(s.stateKey(ch.ID), string(b)))
		next.State = st
	} else {
		ops = append(ops, clientv3.OpDelete(s.stateKey(ch.ID)))
	}
	if ch.Transition != nil {
		b, err := json.Marshal(ch.Transition)
		if err != nil {
			return Record{}, fmt.Errorf("store: encode transition: %w", err)
		}
		ops = append(ops, clientv3.OpPut(s.transitionKey(ch.ID), string(b)))
		t := *ch.Transition
		next.Transition = &t
	} else if base.TransitionRev != 0 {
		ops = append(ops, clientv3.OpDelete(s.transitionKey(ch.ID)))
	}
	hb, err := json.Marshal(ch.History)
	if err != nil {
		return Record{}, fmt.Errorf("store: encode history: %w", err)
	}
	ops = append(ops, clientv3.OpPut(s.historyKey(ch.ID, seq), string(hb)))

	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(s.stateKey(ch.ID)), "=", base.StateRev),
		clientv3.Compare(clientv3.ModRevision(s.transitionKey(ch.ID)), "=", base.TransitionRev),
	).Then(ops...).Commit()
	if err != nil {
		return Record{}, fmt.Errorf("store: commit %s: %w", ch.ID, err)
	}
	if !resp.Succeeded {
		return Record{}, fmt.Errorf("%w: instance %s", ErrStale, ch.ID)
	}
	rev := resp.Header.Revision
	if ch.State != nil {
		next.StateRev = rev
	}
	if ch.Transition != nil {
		next.TransitionRev = rev
	}
	return next, nil
}

// History returns an instance's status changes in order. It outlives the
// instance; an id that never existed has an empty history.
func (s *Store) History(ctx context.Context, id string) ([]instance.HistoryRecord, error) {
	resp, err := s.cli.Get(ctx, s.historyPrefix(id), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: history %s: %w", id, err)
	}
	out := make([]instance.HistoryRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var h instance.HistoryRecord
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			return nil, fmt.Errorf("store: decode %s: %w", kv.Key, err)
		}
		out = append(out, h)
	}
	return out, nil
}
