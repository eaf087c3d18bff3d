package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Unmanaged is a VM a node's driver reports that has no instance record:
// something made behind Lucid's back, or left over. The reconciler
// records it under unmanaged/<node>/<driver>/<vm> bound to the node's
// lease, so the list an operator reads (GET /v1/flags) is cluster-wide
// and an entry vanishes with the node that saw it.
type Unmanaged struct {
	Node   string    `json:"node"`
	Driver string    `json:"driver"`
	ID     string    `json:"id"`
	Power  string    `json:"power"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

func (s *Store) unmanagedKey(node, driver, id string) string {
	return s.key("unmanaged", node, driver, id)
}

// PutUnmanaged records (or refreshes) an unmanaged VM under this
// registration's lease.
func (r *Registration) PutUnmanaged(ctx context.Context, u Unmanaged) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	if _, err := r.s.cli.Put(ctx, r.s.unmanagedKey(u.Node, u.Driver, u.ID), string(b), clientv3.WithLease(r.lease)); err != nil {
		return fmt.Errorf("store: record unmanaged VM %s: %w", u.ID, err)
	}
	return nil
}

// DeleteUnmanaged forgets an unmanaged VM (it went away, or got a record).
func (s *Store) DeleteUnmanaged(ctx context.Context, node, driver, id string) error {
	if _, err := s.cli.Delete(ctx, s.unmanagedKey(node, driver, id)); err != nil {
		return fmt.Errorf("store: forget unmanaged VM %s: %w", id, err)
	}
	return nil
}

// UnmanagedVMs lists the unmanaged VMs every live node has recorded.
func (s *Store) UnmanagedVMs(ctx context.Context) ([]Unmanaged, error) {
	resp, err := s.cli.Get(ctx, s.key("unmanaged")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: unmanaged VMs: %w", err)
	}
	out := make([]Unmanaged, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var u Unmanaged
		if err := json.Unmarshal(kv.Value, &u); err != nil {
			continue // written by a newer Lucid, or damaged: not ours to judge
		}
		out = append(out, u)
	}
	return out, nil
}
