package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lucid-project/lucid/core/instance"
)

// ErrQuota means a change would take a project past one of its limits.
// Nothing was written. A *QuotaError says which limits and by how much.
var ErrQuota = errors.New("quota exceeded")

// Usage is what a project's instances hold: instances, cores and RAM.
// It is kept in quota/<project> and changed in the same transaction as
// the instance record that changes it, so it is never out of step.
type Usage struct {
	Instances int `json:"instances"`
	Cores     int `json:"cores"`
	RAMMB     int `json:"ram_mb"`
}

func (u Usage) add(d Usage) Usage {
	return Usage{u.Instances + d.Instances, u.Cores + d.Cores, u.RAMMB + d.RAMMB}
}

func (u Usage) sub(d Usage) Usage {
	return Usage{u.Instances - d.Instances, u.Cores - d.Cores, u.RAMMB - d.RAMMB}
}

// Limits are a project's quota; -1 means unlimited, as in Nova.
type Limits struct {
	Instances int
	Cores     int
	RAMMB     int
}

// Unlimited limits nothing.
var Unlimited = Limits{-1, -1, -1}

// QuotaError is a change refused because it would take project past its
// limits: for each resource over, what was requested, what was in use and
// what is allowed. It matches ErrQuota; its message is Nova's.
type QuotaError struct {
	Project   string
	Resources []string // Nova's names: instances, cores, ram
	Requested []int
	Used      []int
	Allowed   []int
}

func (e *QuotaError) Error() string {
	ints := func(v []int) string {
		s := make([]string, len(v))
		for i, n := range v {
			s[i] = strconv.Itoa(n)
		}
		return strings.Join(s, ", ")
	}
	overs := strings.Join(e.Resources, ", ")
	return fmt.Sprintf("Quota exceeded for %s: Requested %s, but already used %s of %s %s",
		overs, ints(e.Requested), ints(e.Used), ints(e.Allowed), overs)
}

// Is makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

// UsageOf is what one instance holds: one instance, and the cores and RAM
// of the largest flavor it may be running on. During a resize (from the
// API's write of the resize until confirm or revert) that is the larger
// of the old and the new flavor, since either may be what the hypervisor
// runs, as Nova counts a resize's new flavor while it keeps the old one.
// A deleted instance (st nil) holds nothing.
func UsageOf(st *instance.State, t *instance.Transition) Usage {
	if st == nil {
		return Usage{}
	}
	u := Usage{Instances: 1, Cores: st.Flavor.VCPUs, RAMMB: st.Flavor.RAMMB}
	grow := func(f *instance.Flavor) {
		if f != nil {
			u.Cores, u.RAMMB = max(u.Cores, f.VCPUs), max(u.RAMMB, f.RAMMB)
		}
	}
	grow(st.OldFlavor)
	if t != nil {
		grow(t.Flavor)
	}
	return u
}

// usageShards is how many counters a project's usage is split across.
// An instance's usage is counted in one of them, chosen by its id, so two
// changes of different instances that need no limit check (the
// executor's writes, deletes, projects without limits) rarely compare
// the same key. Measured with 16 writers creating in one project
// (BenchmarkCommit): one counter per project ran at 0.04x a raw etcd
// transaction (each commit waited for the previous one's fsync), 16
// shards at 0.30x, 64 shards at 0.44-0.57x. A change that must check a
// limit still compares every shard of its project, so quotas stay exact;
// creates against a finite quota in one project remain serialized.
const usageShards = 64

// quotaPrefix holds a project's usage shards, quota/<project>/<n>.
// Project names never contain a slash (core/config refuses them).
func (s *Store) quotaPrefix(project string) string { return s.key("quota", project) + "/" }

// shardKey is the usage shard that counts instance id.
func (s *Store) shardKey(project, id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return s.quotaPrefix(project) + strconv.Itoa(int(h.Sum32()%usageShards))
}

// usageMarkerKey says the usage shards have been counted from the
// instance records once (see CountUsage). Its name changed with the
// shards: a store counted into the single counter of earlier versions is
// counted again, into shards, at the first start of this one.
func (s *Store) usageMarkerKey() string { return s.key("quota-sharded") }

// Usage reads a project's usage; a project that never had an instance
// uses nothing.
func (s *Store) Usage(ctx context.Context, project string) (Usage, error) {
	u, _, err := s.readUsage(ctx, project)
	return u, err
}

// readUsage sums a project's shards; rev is the revision of the read, so
// a transaction can require that no shard changed since.
func (s *Store) readUsage(ctx context.Context, project string) (Usage, int64, error) {
	resp, err := s.cli.Get(ctx, s.quotaPrefix(project), clientv3.WithPrefix())
	if err != nil {
		return Usage{}, 0, fmt.Errorf("store: usage of %s: %w", project, err)
	}
	var sum Usage
	for _, kv := range resp.Kvs {
		u, _, err := decodeUsage(kv.Value, kv.ModRevision)
		if err != nil {
			return Usage{}, 0, err
		}
		sum = sum.add(u)
	}
	return sum, resp.Header.Revision, nil
}

// usageCache remembers each usage shard's last known value and
// ModRevision, so a commit that compares only its own shard need not read
// it first. A stale entry costs one failed transaction, whose answer
// refreshes it. It holds at most usageShards entries per project.
type usageCache struct {
	mu     sync.Mutex
	shards map[string]shardValue
}

// shardValue is a shard's usage at its ModRevision (0: absent).
type shardValue struct {
	u   Usage
	rev int64
}

func (c *usageCache) get(key string) (shardValue, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.shards[key]
	return v, ok
}

func (c *usageCache) put(key string, v shardValue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shards == nil {
		c.shards = map[string]shardValue{}
	}
	// Never step back: a concurrent commit may have remembered a newer
	// revision of the same shard.
	if old, ok := c.shards[key]; !ok || v.rev == 0 || v.rev >= old.rev {
		c.shards[key] = v
	}
}

func (c *usageCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.shards, key)
}

// readShard reads one shard and its ModRevision (0 when absent).
func (s *Store) readShard(ctx context.Context, key string) (Usage, int64, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return Usage{}, 0, fmt.Errorf("store: usage shard %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return Usage{}, 0, nil
	}
	return decodeUsage(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

func decodeUsage(b []byte, rev int64) (Usage, int64, error) {
	var u Usage
	if err := json.Unmarshal(b, &u); err != nil {
		return Usage{}, 0, fmt.Errorf("store: decode usage: %w", err)
	}
	return u, rev, nil
}

// check returns a *QuotaError when adding d to u passes a limit. Only
// growth is checked: a change that shrinks or keeps a resource is never
// refused, even over a lowered limit.
func (l Limits) check(project string, u, d Usage) error {
	e := &QuotaError{Project: project}
	for _, r := range []struct {
		name             string
		used, req, limit int
	}{{"instances", u.Instances, d.Instances, l.Instances}, {"cores", u.Cores, d.Cores, l.Cores}, {"ram", u.RAMMB, d.RAMMB, l.RAMMB}} {
		if r.req > 0 && r.limit >= 0 && r.used+r.req > r.limit {
			e.Resources = append(e.Resources, r.name)
			e.Requested = append(e.Requested, r.req)
			e.Used = append(e.Used, r.used)
			e.Allowed = append(e.Allowed, r.limit)
		}
	}
	if len(e.Resources) > 0 {
		return e
	}
	return nil
}

// usageChange is what a commit does to a project's usage.
type usageChange struct {
	project string
	id      string // the instance, whose shard counts it
	delta   Usage
	limits  *Limits // nil: record, never refuse
}

// binds says whether the change must check a limit: it grows a resource
// whose limit is finite.
func (c usageChange) binds() bool {
	if c.limits == nil {
		return false
	}
	l, d := c.limits, c.delta
	return (d.Instances > 0 && l.Instances >= 0) || (d.Cores > 0 && l.Cores >= 0) || (d.RAMMB > 0 && l.RAMMB >= 0)
}

// usageChangeOf computes what ch does to the usage of its instance's
// project, compared with base. ok is false when it changes nothing.
func usageChangeOf(base Record, ch Change) (usageChange, bool) {
	var before Usage
	project := ""
	if base.StateRev != 0 {
		before = UsageOf(&base.State, base.Transition)
		project = base.State.Project
	}
	after := UsageOf(ch.State, ch.Transition)
	if ch.State != nil {
		project = ch.State.Project
	}
	d := after.sub(before)
	if d == (Usage{}) {
		return usageChange{}, false
	}
	return usageChange{project: project, id: ch.ID, delta: d, limits: ch.Limits}, true
}

// commitTxn runs a commit's guarded transaction. When the commit changes
// a project's usage it also rewrites the instance's usage shard, so the
// usage changes with the record or not at all. A change that must check
// a limit (usageChange.binds) reads every shard of the project and
// requires that none changed since, refusing growth past uc.limits with
// a *QuotaError; any other change compares only its own shard. A lost
// race on the usage (another instance of the project changed it) is
// retried with a fresh read; a lost race on the instance's own keys is
// ErrStale.
func (s *Store) commitTxn(ctx context.Context, guards []clientv3.Cmp, ops []op, uc *usageChange) (*clientv3.TxnResponse, error) {
	if uc == nil {
		return s.groupTxn(ctx, guards, ops)
	}
	shard := s.shardKey(uc.project, uc.id)
	for {
		var mine Usage
		var mineRev, readRev int64
		var usageCmp clientv3.Cmp
		var usageGet op
		if uc.binds() {
			// Every shard of the project, in one read: their sum is
			// checked against the limits, and none of them may change
			// before the transaction (shards are never deleted but by
			// CountUsage).
			resp, err := s.cli.Get(ctx, s.quotaPrefix(uc.project), clientv3.WithPrefix())
			if err != nil {
				return nil, fmt.Errorf("store: usage of %s: %w", uc.project, err)
			}
			var total Usage
			for _, kv := range resp.Kvs {
				u, _, err := decodeUsage(kv.Value, kv.ModRevision)
				if err != nil {
					return nil, err
				}
				total = total.add(u)
				s.usage.put(string(kv.Key), shardValue{u, kv.ModRevision})
				if string(kv.Key) == shard {
					mine, mineRev = u, kv.ModRevision
				}
			}
			if err := uc.limits.check(uc.project, total, uc.delta); err != nil {
				return nil, err
			}
			readRev = resp.Header.Revision
			usageCmp = clientv3.Compare(clientv3.ModRevision(s.quotaPrefix(uc.project)), "<", readRev+1).WithPrefix()
			usageGet = op{kind: opGet, key: s.quotaPrefix(uc.project), prefix: true}
		} else {
			v, ok := s.usage.get(shard)
			if !ok {
				var err error
				if v.u, v.rev, err = s.readShard(ctx, shard); err != nil {
					return nil, err
				}
			}
			mine, mineRev = v.u, v.rev
			readRev = mineRev
			usageCmp = clientv3.Compare(clientv3.ModRevision(shard), "=", mineRev)
			usageGet = op{kind: opGet, key: shard}
		}
		next := mine.add(uc.delta)
		// A counter never goes below zero: releasing what was held before
		// the counters existed (see CountUsage) must not make it negative.
		next.Instances, next.Cores, next.RAMMB = max(next.Instances, 0), max(next.Cores, 0), max(next.RAMMB, 0)
		b, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("store: encode usage: %w", err)
		}
		cmps := append(guards[:len(guards):len(guards)], usageCmp)
		resp, err := s.txn(ctx, cmps, append(ops[:len(ops):len(ops)], putOp(shard, b)), []op{usageGet})
		if err != nil {
			s.usage.forget(shard)
			return resp, err
		}
		if resp.Succeeded {
			s.usage.put(shard, shardValue{next, resp.Header.Revision})
			return resp, nil
		}
		changed := false
		s.usage.put(shard, shardValue{}) // absent, unless the answer has it
		for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
			changed = changed || kv.ModRevision > readRev
			if u, _, err := decodeUsage(kv.Value, kv.ModRevision); err == nil {
				s.usage.put(string(kv.Key), shardValue{u, kv.ModRevision})
			} else {
				s.usage.forget(string(kv.Key))
			}
		}
		if !changed && mineRev != 0 {
			// The shard was absent from the answer: it was deleted
			// (CountUsage) since it was remembered.
			if v, _ := s.usage.get(shard); v.rev == 0 {
				changed = true
			}
		}
		if !changed {
			return resp, nil // the instance's own guard failed: ErrStale
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// CountUsage makes the usage counters agree with the instance records
// once, the first time a Lucid that keeps them in shards starts on a
// store: it counts every instance's usage into its project's shard,
// removes every other counter, and writes the marker in one transaction,
// which fails (and is tried again) if an instance or a counter changed
// since the count. When the marker exists it does nothing.
func (s *Store) CountUsage(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		resp, err := s.cli.Get(ctx, s.usageMarkerKey())
		if err != nil {
			return fmt.Errorf("store: count usage: %w", err)
		}
		if len(resp.Kvs) > 0 {
			return nil
		}
		recs, rev, err := s.List(ctx)
		if err != nil {
			return err
		}
		usage := map[string]Usage{} // by shard key
		for _, r := range recs {
			if r.Err == nil {
				k := s.shardKey(r.State.Project, r.State.ID)
				usage[k] = usage[k].add(UsageOf(&r.State, r.Transition))
			}
		}
		ops := []clientv3.Op{clientv3.OpPut(s.usageMarkerKey(), strconv.FormatInt(rev, 10))}
		for k, u := range usage {
			b, _ := json.Marshal(u)
			ops = append(ops, clientv3.OpPut(k, string(b)))
		}
		// Counters this count does not rewrite go: an earlier version's
		// single per-project counter, and shards of projects that hold
		// nothing now.
		old, err := s.cli.Get(ctx, s.key("quota")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
		if err != nil {
			return fmt.Errorf("store: count usage: %w", err)
		}
		for _, kv := range old.Kvs {
			if _, kept := usage[string(kv.Key)]; !kept {
				ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			}
		}
		tr, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(s.usageMarkerKey()), "=", 0),
			clientv3.Compare(clientv3.ModRevision(s.key("instances")+"/"), "<", rev+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(s.key("quota")+"/"), "<", rev+1).WithPrefix(),
		).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("store: count usage: %w", err)
		}
		if tr.Succeeded || attempt >= 20 {
			if !tr.Succeeded {
				return fmt.Errorf("store: count usage: instances kept changing during 20 counts")
			}
			return nil
		}
	}
}
