// Package store keeps Lucid's records in etcd: the key layout, the guarded
// transactions that change an instance's status, history, watches and
// lease-bound node registrations. It is the only package that imports etcd.
//
// Layout under the configured prefix (DESIGN.md section 4):
//
//	instances/<id>/state       settled truth (instance.State)
//	instances/<id>/transition  the action in flight, if any (instance.Transition)
//	history/<id>/<seq>         one record per status change, kept after delete
//	deleted/<id>               when a deleted instance went (retention's index)
//	nodes/<node>               lease-bound node registration (NodeInfo)
//	quota/<project>/<n>        the project's usage (Usage) in 64 shards, changed with its instances
//	identity/users/<name>      users Lucid created (the first start's admin)
//	identity/tokens/<sha256>   issued tokens, hashed, each under a lease
//
// A transition names the node that owns it (instance.Transition.Node);
// that node is alive while its lease-bound nodes/<node> key exists.
package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lucid-project/lucid/core/instance"
)

// ErrStale means a guarded write lost its compare-and-swap: the state or
// the transition changed since they were read. Nothing was written; read
// again and decide again.
var ErrStale = errors.New("stale record: state or transition changed since read")

// ErrUnreadable means a stored record could not be decoded (garbage, or a
// newer schema). The record is reported, not hidden, and never written
// over by this Lucid.
var ErrUnreadable = errors.New("unreadable record")

// Config says how to reach an etcd cluster. (An embedded member is
// started by core/store/embedded; wrap its client with New.)
type Config struct {
	// Endpoints of the etcd cluster.
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
	kv     pb.KVClient // nil: transactions through cli (WithKV)
	group  *grouper    // sends commits, grouped (group.go); nil: one by one
	prefix string
	usage  usageCache // the project usage shards this Store last saw
	// decoded holds the states and transitions already decoded, by key
	// and revision (decoded.go); Get, List and the watch share them.
	decoded decodeCache
}

// New returns a Store using cli (for example an embedded member's
// in-process client) with keys under prefix. Close closes cli.
func New(cli *clientv3.Client, prefix string) *Store {
	return &Store{cli: cli, prefix: strings.TrimRight(prefix, "/")}
}

// Open connects to the etcd cluster at cfg.Endpoints and checks that it
// answers. Close disconnects.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	prefix := strings.TrimRight(cfg.Prefix, "/")
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("store: no endpoints")
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
		// The client's own retry chatter would go to stderr in zap's
		// format; every failure that matters reaches Lucid as an error.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("store: connect %v: %w", cfg.Endpoints, err)
	}
	// Commits go through a grouper here too, on etcd's KV stub over the
	// client's own connection (its interceptors, credentials and call
	// options included): a group saves a network round trip per member
	// as well as the per-request work in etcd (group.go).
	s := &Store{cli: cli, prefix: prefix, group: &grouper{kv: pb.NewKVClient(cli.ActiveConnection())}}
	// Fail start-up now rather than on the first request.
	sctx, cancel := context.WithTimeout(ctx, dt)
	defer cancel()
	if _, err := cli.Get(sctx, s.key("ping")); err != nil {
		cli.Close()
		return nil, fmt.Errorf("store: reach %v: %w", cfg.Endpoints, err)
	}
	return s, nil
}

// Close disconnects.
func (s *Store) Close() error {
	err := s.cli.Close()
	if errors.Is(err, context.Canceled) {
		// Closing cancels the client's own context; that is not a failure.
		err = nil
	}
	return err
}

func (s *Store) key(parts ...string) string {
	return s.prefix + "/" + strings.Join(parts, "/")
}

func (s *Store) stateKey(id string) string      { return s.key("instances", id, "state") }
func (s *Store) transitionKey(id string) string { return s.key("instances", id, "transition") }
func (s *Store) historyPrefix(id string) string { return s.key("history", id) + "/" }
func (s *Store) deletedKey(id string) string    { return s.key("deleted", id) }
func (s *Store) historyKey(id string, seq int64) string {
	return fmt.Sprintf("%s%020d", s.historyPrefix(id), seq)
}

// Record is an instance as read from etcd, with the revisions that guard
// the next write.
//
// Records read by Get and List (and the transitions of WatchTransitions)
// share what they point to with every other reader of the same revision:
// the decoded records are cached by key and ModRevision (decoded.go). A
// Record's own fields, and those of State and of *Transition, are the
// caller's to change; the maps, slices and pointed-to values inside them
// (State.Metadata, State.Flags, State.Fault, State.OldFlavor,
// Transition.Steps, Transition.Flavor, Transition.Image) are not: never
// write into them; replace them (copy on write: st.Flags =
// append(slices.Clone(st.Flags), f); st.Fault = &instance.Fault{...}).
// The shared slices have no spare capacity, so an append copies.
// CheckShared finds a record that was changed in place.
type Record struct {
	State      instance.State
	Transition *instance.Transition
	// StateRev and TransitionRev are the keys' ModRevisions; 0 means the
	// key does not exist.
	StateRev      int64
	TransitionRev int64
	// Err is set (wrapping ErrUnreadable) when the record could not be
	// decoded; State then holds only the ID. One bad record must not take
	// down listing or the executor: callers skip it and show it as ERROR.
	Err error
}

// Status is the record's user-visible status; an unreadable record is
// ERROR.
func (r Record) Status() instance.Status {
	if r.Err != nil {
		return instance.StatusError
	}
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
	recs := s.decode(resp.Kvs, 0)
	rev := resp.Header.Revision
	if len(recs) == 0 || recs[0].StateRev == 0 {
		s.forget(id, rev, true, true)
		return Record{}, fmt.Errorf("%w: %s", instance.ErrNotFound, id)
	}
	if recs[0].TransitionRev == 0 {
		s.forget(id, rev, false, true)
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
	recs := s.decode(resp.Kvs, resp.Header.Revision)
	out := recs[:0]
	for _, r := range recs {
		if r.StateRev != 0 {
			out = append(out, r)
		}
	}
	return out, resp.Header.Revision, nil
}

// Change is one write of an instance: the new state (nil deletes it: the
// instance is gone), the new transition (nil: none in flight) and, for a
// status change, the history record that explains it. History is nil only
// for writes that change no status (a flag, a transition that shows no
// step yet, an adoption).
type Change struct {
	ID         string
	State      *instance.State
	Transition *instance.Transition
	History    *instance.HistoryRecord
	// Limits, if set, are the project's quota: a change that makes the
	// instance hold more (UsageOf) than the project has left is refused
	// with a *QuotaError. Nil records the usage without checking it (the
	// executor's writes: what the driver did has happened).
	Limits *Limits
}

// Commit writes a change in one etcd transaction, guarded by the
// ModRevisions in base: state, transition and history change together or
// not at all, and so does the usage of the instance's project when the
// change makes the instance hold more or less (quota.go; past ch.Limits it
// is a *QuotaError). A change that leaves the usage alone may reach etcd
// nested in one request with other instances' commits and land at the
// same revision as they do; it still lands or fails as it would alone
// (group.go). The history record's sequence number is allocated here from
// base.State.HistorySeq. Losing the compare is ErrStale. Pass a zero base
// to create an instance (both keys must be absent). An unreadable base is
// refused: this Lucid never writes over what it cannot read. A change
// that deletes the instance also writes deleted/<id>, for retention
// (PruneHistory). When etcd is out of space the error wraps ErrNoSpace.
// When ctx ends while the transaction is in flight, or etcd answers
// NOSPACE, Commit reads whether the write landed all the same and, if it
// did, reports it as made. (If that read fails too, the error leaves it
// open; the watch will tell.)
func (s *Store) Commit(ctx context.Context, base Record, ch Change) (Record, error) {
	if ch.ID == "" {
		return Record{}, fmt.Errorf("store: commit without an instance id")
	}
	if base.Err != nil {
		return Record{}, fmt.Errorf("store: commit %s: %w", ch.ID, base.Err)
	}
	seq := base.State.HistorySeq
	if ch.History != nil {
		seq++
	}
	// Values go to etcd as the encoder made them, and keys are built
	// once: a commit is on every status change's path, and copying each
	// value twice (to a string and back) was a tenth of what a commit
	// allocated in lucid serve.
	stateKey, transitionKey := s.stateKey(ch.ID), s.transitionKey(ch.ID)
	ops := make([]op, 0, 4)
	var puts []put // what the transaction writes, to tell whether it landed
	var next Record
	var stBytes, tBytes []byte // for the decode cache (keepWritten)
	if ch.State != nil {
		st := *ch.State
		st.Schema = instance.StateSchema
		st.HistorySeq = seq
		b, err := json.Marshal(st)
		if err != nil {
			return Record{}, fmt.Errorf("store: encode state: %w", err)
		}
		stBytes = b
		ops = append(ops, putOp(stateKey, b))
		next.State = st
	} else {
		ops = append(ops, deleteOp(stateKey))
	}
	if ch.Transition != nil {
		t := *ch.Transition
		t.Schema = instance.TransitionSchema
		b, err := json.Marshal(t)
		if err != nil {
			return Record{}, fmt.Errorf("store: encode transition: %w", err)
		}
		tBytes = b
		ops = append(ops, putOp(transitionKey, b))
		next.Transition = &t
	} else if base.TransitionRev != 0 {
		ops = append(ops, deleteOp(transitionKey))
	}
	if ch.History != nil {
		h := *ch.History
		h.Schema, h.Seq = instance.HistorySchema, seq
		hb, err := json.Marshal(h)
		if err != nil {
			return Record{}, fmt.Errorf("store: encode history: %w", err)
		}
		hk := s.historyKey(ch.ID, seq)
		ops = append(ops, putOp(hk, hb))
		// A history key is written once (its seq is allocated under the
		// guard) and never changed, so it alone proves the write landed,
		// even after others changed the state.
		puts = []put{{hk, hb}}
		if ch.State == nil {
			// Remember when the instance went, so retention can remove
			// its history deleted_ttl later without reading it.
			mb, err := json.Marshal(deletion{At: h.At, Seq: seq})
			if err != nil {
				return Record{}, fmt.Errorf("store: encode deletion: %w", err)
			}
			ops = append(ops, putOp(s.deletedKey(ch.ID), mb))
		}
	} else if ch.State == nil {
		return Record{}, fmt.Errorf("store: commit %s: deleting an instance is a status change and needs a history record", ch.ID)
	} else {
		// No history record: the state and transition written are the
		// proof.
		puts = append(puts, put{stateKey, stBytes})
		if ch.Transition != nil {
			puts = append(puts, put{transitionKey, tBytes})
		}
	}

	// The project's usage changes in the same transaction (quota.go).
	var uc *usageChange
	if c, ok := usageChangeOf(base, ch); ok {
		uc = &c
	}
	resp, err := s.commitTxn(ctx, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(stateKey), "=", base.StateRev),
		clientv3.Compare(clientv3.ModRevision(transitionKey), "=", base.TransitionRev),
	}, ops, uc)
	var rev int64
	switch {
	case errors.Is(err, ErrQuota):
		return Record{}, err
	case err == nil && !resp.Succeeded:
		return Record{}, fmt.Errorf("%w: instance %s", ErrStale, ch.ID)
	case err == nil:
		rev = resp.Header.Revision
	default:
		if rev = s.landedDespite(ctx, err, puts); rev == 0 {
			return Record{}, etcdErr("commit "+ch.ID, err)
		}
	}
	if ch.State != nil {
		next.StateRev = rev
	} else {
		next.State = base.State
	}
	if ch.Transition != nil {
		next.TransitionRev = rev
	}
	if ch.State == nil || ch.Transition == nil {
		// The keys this change deleted are gone from the decode cache too.
		s.forget(ch.ID, rev, ch.State == nil, true)
	}
	var wroteState *instance.State
	if ch.State != nil {
		wroteState = &next.State
	}
	s.keepWritten(rev, ch.ID, wroteState, stBytes, next.Transition, tBytes)
	return next, nil
}

// landedCheckTimeout bounds the read that tells whether a commit whose
// context ended in flight was applied.
const landedCheckTimeout = 2 * time.Second

// put is one key a transaction writes, and its value.
type put struct {
	key   string
	value []byte
}

// landedDespite returns the revision at which puts landed although their
// transaction failed with err, or 0. Only two failures can hide an
// applied write, and only they cost a read: etcd applies the write that
// crosses the quota and only then answers NOSPACE; and when the caller's
// context ended in flight (a client that hung up, a step that was
// replaced, a shutdown), cancelling cannot undo what etcd received.
// Finding out, rather than reporting a change that was made as not made,
// keeps it in the caller's metrics and hand-off while the watch carries
// it to everyone else. An ended context gets a read of its own, bounded
// by landedCheckTimeout.
func (s *Store) landedDespite(ctx context.Context, err error, puts []put) int64 {
	if !isNoSpace(err) && ctx.Err() == nil {
		return 0
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), landedCheckTimeout)
		defer cancel()
	}
	rev, lerr := s.landed(ctx, puts)
	if lerr != nil {
		return 0
	}
	return rev
}

// landed returns the revision at which a transaction that wrote puts was
// applied, or 0 if it was not (or was overwritten since): every key must
// hold exactly its value, all written at one revision.
func (s *Store) landed(ctx context.Context, puts []put) (int64, error) {
	if len(puts) == 0 {
		return 0, nil
	}
	gets := make([]clientv3.Op, len(puts))
	for i, p := range puts {
		gets[i] = clientv3.OpGet(p.key)
	}
	resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return 0, err
	}
	var rev int64
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) != 1 || !bytes.Equal(kvs[0].Value, puts[i].value) || i > 0 && kvs[0].ModRevision != rev {
			return 0, nil
		}
		rev = kvs[0].ModRevision
	}
	return rev, nil
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
		h, err := instance.DecodeHistory(kv.Value)
		if err != nil {
			// Keep the rest of the history readable; say where the gap is.
			h = instance.HistoryRecord{Message: fmt.Sprintf("unreadable history record %s: %v", kv.Key, err)}
		}
		out = append(out, h)
	}
	return out, nil
}
