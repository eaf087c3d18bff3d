package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lucid-project/lucid/core/instance"
)

// ErrNodeAlive means an adoption was refused because the transition's
// owner node is still registered.
var ErrNodeAlive = errors.New("owner node is alive")

// NodeInfo is what a node says about itself while it is alive.
type NodeInfo struct {
	Name    string       `json:"name"`
	Drivers []DriverInfo `json:"drivers"`
	API     string       `json:"api,omitempty"`
	Started time.Time    `json:"started"`
}

// DriverInfo is one driver a node runs and the optional capabilities it
// reported (sdk/driver's CapRebuild, CapResize, CapEvents).
type DriverInfo struct {
	Name         string   `json:"name"`
	Version      string   `json:"version,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
}

// Driver returns the named driver's info.
func (n NodeInfo) Driver(name string) (DriverInfo, bool) {
	for _, d := range n.Drivers {
		if d.Name == name {
			return d, true
		}
	}
	return DriverInfo{}, false
}

// Registration is a node's lease-bound presence in etcd. While it lives
// the node key exists; when the process dies the lease expires and the
// key vanishes with it, which is how other nodes tell that the node's
// transitions are orphans.
type Registration struct {
	s      *Store
	lease  clientv3.LeaseID
	cancel context.CancelFunc
	done   chan struct{}
}

// Register writes nodes/<name> under a lease with the given TTL (whole
// seconds, at least 1) and keeps the lease alive until Close. A node that
// restarts under the same name before its old lease expired takes the
// key over: the old lease then expires without taking the key along.
func (s *Store) Register(ctx context.Context, info NodeInfo, ttl time.Duration) (*Registration, error) {
	secs := max(int64((ttl+time.Second-1)/time.Second), 1)
	lease, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return nil, etcdErr("lease for node "+info.Name, err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	if _, err := s.cli.Put(ctx, s.key("nodes", info.Name), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return nil, etcdErr("register node "+info.Name, err)
	}
	kctx, cancel := context.WithCancel(context.Background())
	ka, err := s.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("store: keep node %s alive: %w", info.Name, err)
	}
	r := &Registration{s: s, lease: lease.ID, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for range ka {
		}
	}()
	return r, nil
}

// Close revokes the lease, removing the node key, and stops the
// keep-alive.
func (r *Registration) Close(ctx context.Context) error {
	r.cancel()
	<-r.done
	_, err := r.s.cli.Revoke(ctx, r.lease)
	if err != nil {
		return fmt.Errorf("store: revoke node lease: %w", err)
	}
	return nil
}

// Node reads one node's registration; ok is false when the node is not
// alive.
func (s *Store) Node(ctx context.Context, name string) (info NodeInfo, ok bool, err error) {
	resp, err := s.cli.Get(ctx, s.key("nodes", name))
	if err != nil {
		return NodeInfo{}, false, fmt.Errorf("store: node %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return NodeInfo{}, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &info); err != nil {
		return NodeInfo{}, false, fmt.Errorf("store: decode node %s: %w", name, err)
	}
	return info, true, nil
}

// Nodes lists the live nodes, by name.
func (s *Store) Nodes(ctx context.Context) ([]NodeInfo, error) {
	prefix := s.key("nodes") + "/"
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: nodes: %w", err)
	}
	out := make([]NodeInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var info NodeInfo
		if err := json.Unmarshal(kv.Value, &info); err != nil {
			info = NodeInfo{Name: strings.TrimPrefix(string(kv.Key), prefix)}
		}
		out = append(out, info)
	}
	return out, nil
}

// Adopt moves rec's instance and its transition in flight to node, in one
// guarded Txn that succeeds only if neither key changed since rec was
// read (else ErrStale) and the transition's owner's nodes/<owner> key is
// absent (else ErrNodeAlive): a live node's work is never taken from it.
// The step's clock restarts and its attempt counts up, as when a node
// resumes its own step. No status changes, so no history record is
// written.
func (s *Store) Adopt(ctx context.Context, rec Record, node string, now time.Time) (Record, error) {
	if rec.Transition == nil || rec.TransitionRev == 0 || rec.StateRev == 0 {
		return Record{}, fmt.Errorf("store: adopt %s: no transition in flight", rec.State.ID)
	}
	if rec.Err != nil {
		return Record{}, fmt.Errorf("store: adopt %s: %w", rec.State.ID, rec.Err)
	}
	old := rec.Transition.Node
	t := *rec.Transition
	t.Node, t.Schema = node, instance.TransitionSchema
	t.StepStartedAt, t.Attempt = now, t.Attempt+1
	st := rec.State
	st.Node, st.Schema, st.UpdatedAt = node, instance.StateSchema, now
	tb, err := json.Marshal(t)
	if err != nil {
		return Record{}, fmt.Errorf("store: encode transition: %w", err)
	}
	sb, err := json.Marshal(st)
	if err != nil {
		return Record{}, fmt.Errorf("store: encode state: %w", err)
	}
	tk, sk := s.transitionKey(rec.State.ID), s.stateKey(rec.State.ID)
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(tk), "=", rec.TransitionRev),
		clientv3.Compare(clientv3.ModRevision(sk), "=", rec.StateRev),
		clientv3.Compare(clientv3.CreateRevision(s.key("nodes", old)), "=", 0),
	).Then(clientv3.OpPut(tk, string(tb)), clientv3.OpPut(sk, string(sb))).Else(
		clientv3.OpGet(tk, clientv3.WithKeysOnly()), clientv3.OpGet(sk, clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		landed := s.landedDespite(ctx, err, []put{{tk, tb}, {sk, sb}})
		if landed == 0 {
			return Record{}, etcdErr("adopt "+rec.State.ID, err)
		}
		return Record{State: st, Transition: &t, StateRev: landed, TransitionRev: landed}, nil
	}
	if !resp.Succeeded {
		tkv, skv := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
		if len(tkv) == 1 && tkv[0].ModRevision == rec.TransitionRev && len(skv) == 1 && skv[0].ModRevision == rec.StateRev {
			return Record{}, fmt.Errorf("%w: %s owns %s", ErrNodeAlive, old, rec.State.ID)
		}
		return Record{}, fmt.Errorf("%w: instance %s", ErrStale, rec.State.ID)
	}
	rev := resp.Header.Revision
	return Record{State: st, Transition: &t, StateRev: rev, TransitionRev: rev}, nil
}
