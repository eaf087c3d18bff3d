package store

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lucid-project/lucid/core/instance"
)

// PutRaw writes value at key (relative to the prefix) behind Lucid's back,
// so tests can plant what Lucid itself never writes: garbage, old schemas.
func (s *Store) PutRaw(ctx context.Context, key, value string) error {
	_, err := s.cli.Put(ctx, s.key(key), value)
	return err
}

// HistorySeqs returns the sequence numbers of id's history records as
// stored (keys, not values), so retention tests see exactly what is left.
func (s *Store) HistorySeqs(ctx context.Context, id string) ([]int64, error) {
	resp, err := s.cli.Get(ctx, s.historyPrefix(id), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, kv := range resp.Kvs {
		seq, ok := s.historySeq(id, kv.Key)
		if !ok {
			return nil, fmt.Errorf("bad history key %s", kv.Key)
		}
		out = append(out, seq)
	}
	return out, nil
}

// Indexed reports whether deleted/<id> exists.
func (s *Store) Indexed(ctx context.Context, id string) (bool, error) {
	resp, err := s.cli.Get(ctx, s.deletedKey(id), clientv3.WithCountOnly())
	if err != nil {
		return false, err
	}
	return resp.Count == 1, nil
}

// DeleteRaw removes key (relative to the prefix) behind Lucid's back.
func (s *Store) DeleteRaw(ctx context.Context, key string) error {
	_, err := s.cli.Delete(ctx, s.key(key))
	return err
}

// RawKeys lists the keys under prefix (relative to the store's prefix).
func (s *Store) RawKeys(ctx context.Context, prefix string) ([]string, error) {
	resp, err := s.cli.Get(ctx, s.key(prefix), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key)[len(s.prefix)+1:])
	}
	return out, nil
}

// DecodedLen is how many states and transitions the decode cache holds.
func (s *Store) DecodedLen() (states, transitions int) { return s.decodedLen() }

// RoundTrips exposes the decode cache's test of a written state and
// transition (keepWritten).
func RoundTrips(st *instance.State, t *instance.Transition) (state, transition bool) {
	return st != nil && stateRoundTrips(st), t != nil && transitionRoundTrips(t)
}

// Queued is how many commits wait behind the one in flight (group.go).
func (s *Store) Queued() int {
	if s.group == nil {
		return 0
	}
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue)
}

// WrapGroupKV has the store's commits go through wrap(kv) instead of kv
// (group.go), so a test can hold one in flight and see what is sent.
func (s *Store) WrapGroupKV(wrap func(pb.KVClient) pb.KVClient) {
	s.group.kv = wrap(s.group.kv)
}
