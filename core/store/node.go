package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrClaimed means another node holds the claim on an instance.
var ErrClaimed = errors.New("instance claimed by another node")

// NodeInfo is what a node says about itself while it is alive.
type NodeInfo struct {
	Name    string    `json:"name"`
	Drivers []string  `json:"drivers"`
	API     string    `json:"api,omitempty"`
	Started time.Time `json:"started"`
}

// Registration is a node's lease-bound presence in etcd. While it lives
// the node key exists; when the process dies the lease expires and the
// node key and all its claims vanish with it.
type Registration struct {
	s      *Store
	lease  clientv3.LeaseID
	cancel context.CancelFunc
	done   chan struct{}
}

// Register writes nodes/<name> under a lease with the given TTL and keeps
// the lease alive until Close.
func (s *Store) Register(ctx context.Context, info NodeInfo, ttl time.Duration) (*Registration, error) {
	secs := int64(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	lease, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("store: lease for node %s: %w", info.Name, err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	if _, err := s.cli.Put(ctx, s.key("nodes", info.Name), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return nil, fmt.Errorf("store: register node %s: %w", info.Name, err)
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

// Claim records that this registration's node executes the transition of
// instance id. Claiming an instance the node already holds succeeds; one
// held by another live node is ErrClaimed. The claim vanishes with the
// node's lease, which is how orphans are recognised.
func (r *Registration) Claim(ctx context.Context, node, id string) error {
	k := r.s.key("claims", id)
	resp, err := r.s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, node, clientv3.WithLease(r.lease))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("store: claim %s: %w", id, err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) == node {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrClaimed, id)
}

// Release drops this node's claim on id, if it holds it.
func (r *Registration) Release(ctx context.Context, node, id string) error {
	k := r.s.key("claims", id)
	_, err := r.s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(k), "=", node)).
		Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return fmt.Errorf("store: release %s: %w", id, err)
	}
	return nil
}

// Close revokes the lease, removing the node key and its claims, and
// stops the keep-alive.
func (r *Registration) Close(ctx context.Context) error {
	r.cancel()
	<-r.done
	_, err := r.s.cli.Revoke(ctx, r.lease)
	if err != nil {
		return fmt.Errorf("store: revoke node lease: %w", err)
	}
	return nil
}
