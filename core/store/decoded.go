package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"reflect"
	"slices"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lucid-project/lucid/core/instance"
)

// decodedLimit bounds each of the decode cache's two maps (states and
// transitions) by entries: room for 100,000 instances and their
// transitions with headroom. A decoded state with its key is about 700
// bytes of heap (measured: 5,000 bench-shaped states), so a full map of
// states is about 90 MB; transitions exist only while actions run.
const decodedLimit = 1 << 17

// decodeCache keeps the states and transitions this Store decoded, each
// under its key with the ModRevision and a hash of the bytes it was
// decoded from. etcd never gives a key other bytes at the same
// ModRevision, so a record read again at the same revision is the record
// decoded before: listing and the action path's reads skip the JSON
// decoding (about half of a listing's CPU). The hash guards the one case
// where that could fail: a cluster restored from a snapshot behind the
// revisions this process saw.
//
// The decoded values are shared by every reader (see Record): nobody may
// mutate them. Entries are pruned when a newer revision of the key is
// decoded, when a read or a commit shows the key gone, and when a List
// does not return a key it held at or before the List's revision; beyond
// decodedLimit entries, an arbitrary eighth of the map is dropped. A
// dropped entry only costs a decode. The zero value is ready to use.
type decodeCache struct {
	mu          sync.Mutex
	seed        maphash.Seed
	states      map[string]*cached[instance.State]
	transitions map[string]*cached[instance.Transition]
	// check (CheckDecoded) keeps each entry's bytes, and compares an
	// entry with them when it leaves the cache; changed collects the
	// differences for CheckShared.
	check   bool
	changed []error
}

// cached is a value decoded from the bytes of hash sum, written at rev.
type cached[T any] struct {
	rev, listed int64 // listed: the newest List's revision that returned it
	sum         uint64
	v           T
	raw         []byte // the bytes, when checking (decodeCache.check)
}

// valid reports whether e was decoded from a key's bytes written at rev
// and hashing to sum.
func (e *cached[T]) valid(rev int64, sum uint64) bool {
	return e != nil && e.rev == rev && e.sum == sum
}

// keep stores e for key unless a newer revision is there (two reads
// racing), evicting an eighth of m when it is full.
func keep[T any](c *decodeCache, m map[string]*cached[T], key string, e *cached[T]) {
	old, ok := m[key]
	if ok && old.rev > e.rev {
		return
	}
	if ok {
		retire(c, key, old)
	}
	if !ok && len(m) >= decodedLimit {
		n := len(m) / 8
		for k, old := range m {
			if n == 0 {
				break
			}
			retire(c, k, old)
			delete(m, k)
			n--
		}
	}
	m[key] = e
}

// sweep drops the entries of keys a List at rev did not return although
// they existed at or before rev: those keys are gone.
func sweep[T any](c *decodeCache, m map[string]*cached[T], rev int64) {
	for k, e := range m {
		if e.rev <= rev && e.listed < rev {
			retire(c, k, e)
			delete(m, k)
		}
	}
}

// dropUpTo drops key's entry if it is from rev or before: a read at rev
// (or a commit that wrote rev) showed the key absent.
func dropUpTo[T any](c *decodeCache, m map[string]*cached[T], key string, rev int64) {
	if e, ok := m[key]; ok && e.rev <= rev {
		retire(c, key, e)
		delete(m, key)
	}
}

// retire compares an entry leaving the cache with the bytes it was
// decoded from, when the cache keeps them (CheckDecoded); c.mu is held.
func retire[T any](c *decodeCache, key string, e *cached[T]) {
	if e.raw == nil {
		return
	}
	if err := changed(key, e); err != nil {
		c.changed = append(c.changed, err)
	}
}

// changed decodes e's bytes again and reports a difference from e's
// value, naming key: a reader wrote into the shared record.
func changed[T any](key string, e *cached[T]) error {
	var fresh T
	var err error
	switch p := any(&fresh).(type) {
	case *instance.State:
		*p, err = instance.DecodeState(e.raw)
		if p.ID == "" {
			p.ID = any(e.v).(instance.State).ID // decode fills it from the key
		}
	case *instance.Transition:
		*p, err = instance.DecodeTransition(e.raw)
	}
	if err != nil || reflect.DeepEqual(fresh, e.v) {
		return nil
	}
	return fmt.Errorf("store: %s at revision %d was changed after decoding: shared %+v, stored %+v", key, e.rev, e.v, fresh)
}

// kind is which record a key under instances/<id>/ holds.
type kind uint8

const (
	kindOther kind = iota
	kindState
	kindTransition
)

// item is one key of a read, as decode resolves it.
type item struct {
	kv    *mvccpb.KeyValue
	id    string
	kind  kind
	sum   uint64
	state *cached[instance.State]
	trans *cached[instance.Transition]
	fresh bool // decoded by this read, not found in the cache
	err   error
}

// decode groups state and transition keys (which sort together) into
// records, in key order, decoding only what the cache does not hold. A
// value that does not decode marks its record unreadable (Record.Err)
// instead of failing the whole read (and is not cached). listRev, when
// not 0, says kvs are every instance key at that revision (a List): the
// cache then forgets the keys that are gone.
func (s *Store) decode(kvs []*mvccpb.KeyValue, listRev int64) []Record {
	base := s.key("instances") + "/"
	c := &s.decoded
	seed := c.seedOf()
	items := make([]item, len(kvs))
	for i, kv := range kvs {
		it := &items[i]
		it.kv = kv
		if len(kv.Key) < len(base) || string(kv.Key[:len(base)]) != base {
			continue
		}
		id, k, ok := cutByte(kv.Key[len(base):], '/')
		if !ok {
			continue
		}
		it.id = string(id)
		switch string(k) {
		case "state":
			it.kind = kindState
		case "transition":
			it.kind = kindTransition
		default:
			continue
		}
		it.sum = maphash.Bytes(seed, kv.Value)
	}

	// Hits under one lock; misses are decoded outside it.
	c.mu.Lock()
	check := c.check
	miss := 0
	for i := range items {
		it := &items[i]
		switch it.kind {
		case kindState:
			if e := c.states[string(it.kv.Key)]; e.valid(it.kv.ModRevision, it.sum) {
				it.state = e
				e.listed = max(e.listed, listRev)
				continue
			}
		case kindTransition:
			if e := c.transitions[string(it.kv.Key)]; e.valid(it.kv.ModRevision, it.sum) {
				it.trans = e
				e.listed = max(e.listed, listRev)
				continue
			}
		default:
			continue
		}
		miss++
	}
	c.mu.Unlock()

	if miss > 0 {
		for i := range items {
			it := &items[i]
			switch {
			case it.kind == kindState && it.state == nil:
				st, err := instance.DecodeState(it.kv.Value)
				if err != nil {
					it.err = fmt.Errorf("%w: %s: %w", ErrUnreadable, it.kv.Key, err)
					continue
				}
				if st.ID == "" {
					st.ID = it.id
				}
				st.Flags = slices.Clip(st.Flags)
				it.state, it.fresh = &cached[instance.State]{rev: it.kv.ModRevision, listed: listRev, sum: it.sum, v: st}, true
				if check {
					it.state.raw = bytes.Clone(it.kv.Value)
				}
			case it.kind == kindTransition && it.trans == nil:
				t, err := instance.DecodeTransition(it.kv.Value)
				if err != nil {
					it.err = fmt.Errorf("%w: %s: %w", ErrUnreadable, it.kv.Key, err)
					continue
				}
				t.Steps = slices.Clip(t.Steps)
				it.trans, it.fresh = &cached[instance.Transition]{rev: it.kv.ModRevision, listed: listRev, sum: it.sum, v: t}, true
				if check {
					it.trans.raw = bytes.Clone(it.kv.Value)
				}
			}
		}
	}
	if miss > 0 || listRev != 0 {
		c.mu.Lock()
		c.init()
		for i := range items {
			it := &items[i]
			switch {
			case !it.fresh:
			case it.state != nil:
				keep(c, c.states, string(it.kv.Key), it.state)
			case it.trans != nil:
				keep(c, c.transitions, string(it.kv.Key), it.trans)
			}
		}
		if listRev != 0 {
			sweep(c, c.states, listRev)
			sweep(c, c.transitions, listRev)
		}
		c.mu.Unlock()
	}

	out := make([]Record, 0, len(items)) // settled instances have one key each
	last := ""
	for i := range items {
		it := &items[i]
		if it.kind == kindOther {
			continue
		}
		// A record's keys sort together, so a new id starts a new record.
		if len(out) == 0 || it.id != last {
			out = append(out, Record{})
			last = it.id
		}
		r := &out[len(out)-1]
		switch it.kind {
		case kindState:
			if it.err != nil {
				r.Err = errors.Join(r.Err, it.err)
				r.State = instance.State{ID: it.id}
			} else {
				r.State = it.state.v
			}
			r.StateRev = it.kv.ModRevision
		case kindTransition:
			if it.err != nil {
				r.Err = errors.Join(r.Err, it.err)
			} else {
				t := it.trans.v // the Record's own copy; what it points to is shared
				r.Transition = &t
			}
			r.TransitionRev = it.kv.ModRevision
		}
	}
	return out
}

// seedOf returns the cache's hash seed, choosing it on first use.
func (c *decodeCache) seedOf() maphash.Seed {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	return c.seed
}

// init makes the maps and seed of a zero cache; c.mu must be held.
func (c *decodeCache) init() {
	if c.states == nil {
		c.seed = maphash.MakeSeed()
		c.states = make(map[string]*cached[instance.State])
		c.transitions = make(map[string]*cached[instance.Transition])
	}
}

// forget drops the cached records of instance id's keys that a read or
// write at rev showed absent.
func (s *Store) forget(id string, rev int64, state, transition bool) {
	c := &s.decoded
	c.mu.Lock()
	defer c.mu.Unlock()
	if state {
		dropUpTo(c, c.states, s.stateKey(id), rev)
	}
	if transition {
		dropUpTo(c, c.transitions, s.transitionKey(id), rev)
	}
}

// decodedLen is how many states and transitions the cache holds.
func (s *Store) decodedLen() (states, transitions int) {
	c := &s.decoded
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.states), len(c.transitions)
}

// CheckDecoded makes the decode cache keep the bytes of each record it
// decodes from now on, so that CheckShared can compare a record with them
// also when it leaves the cache (replaced by a newer revision, deleted,
// evicted): a record changed in place and then written again would
// otherwise go unnoticed. For tests: it doubles the cache's memory and
// decodes every record twice.
func (s *Store) CheckDecoded() {
	s.decoded.mu.Lock()
	defer s.decoded.mu.Unlock()
	s.decoded.check = true
}

// CheckShared reports every record a caller changed after it was decoded
// (store.Record: decoded records are shared, never to be written into),
// naming its key: the records the decode cache holds compared with a
// fresh decode of the bytes now stored at their revision, and, after
// CheckDecoded, the records that left the cache since the last call
// compared with their own bytes. It decodes everything, so it is for
// tests, not a server's hot path.
func (s *Store) CheckShared(ctx context.Context) error {
	resp, err := s.cli.Get(ctx, s.key("instances")+"/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("store: check shared records: %w", err)
	}
	c := &s.decoded
	seed := c.seedOf()
	c.mu.Lock()
	errs := c.changed
	c.changed = nil
	c.mu.Unlock()
	for _, kv := range resp.Kvs {
		sum := maphash.Bytes(seed, kv.Value)
		c.mu.Lock()
		st, tr := c.states[string(kv.Key)], c.transitions[string(kv.Key)]
		c.mu.Unlock()
		var err error
		switch {
		case st.valid(kv.ModRevision, sum):
			err = changed(string(kv.Key), &cached[instance.State]{rev: st.rev, v: st.v, raw: kv.Value})
		case tr.valid(kv.ModRevision, sum):
			err = changed(string(kv.Key), &cached[instance.Transition]{rev: tr.rev, v: tr.v, raw: kv.Value})
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cutByte is bytes.Cut for one separator byte.
func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}
