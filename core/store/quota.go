package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

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

func (s *Store) quotaKey(project string) string { return s.key("quota", project) }

// usageMarkerKey says the usage counters have been counted from the
// instance records once (see CountUsage).
func (s *Store) usageMarkerKey() string { return s.key("quota-counted") }

// Usage reads a project's usage; a project that never had an instance
// uses nothing.
func (s *Store) Usage(ctx context.Context, project string) (Usage, error) {
	u, _, err := s.readUsage(ctx, project)
	return u, err
}

func (s *Store) readUsage(ctx context.Context, project string) (Usage, int64, error) {
	resp, err := s.cli.Get(ctx, s.quotaKey(project))
	if err != nil {
		return Usage{}, 0, fmt.Errorf("store: usage of %s: %w", project, err)
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
	delta   Usage
	limits  *Limits // nil: record, never refuse
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
	return usageChange{project: project, delta: d, limits: ch.Limits}, true
}

// commitTxn runs a commit's guarded transaction. When the commit changes
// a project's usage it also compares and rewrites quota/<project>, so the
// usage changes with the record or not at all, and refuses growth past
// uc.limits with a *QuotaError. A lost race on the usage key alone (another
// instance of the project changed it) is retried with the value the failed
// transaction read back; a lost race on the instance's own keys is
// ErrStale.
func (s *Store) commitTxn(ctx context.Context, guards []clientv3.Cmp, ops []clientv3.Op, uc *usageChange) (*clientv3.TxnResponse, error) {
	if uc == nil {
		return s.cli.Txn(ctx).If(guards...).Then(ops...).Commit()
	}
	qk := s.quotaKey(uc.project)
	u, rev, err := s.readUsage(ctx, uc.project)
	if err != nil {
		return nil, err
	}
	for {
		if uc.limits != nil {
			if err := uc.limits.check(uc.project, u, uc.delta); err != nil {
				return nil, err
			}
		}
		next := u.add(uc.delta)
		// A counter never goes below zero: releasing what was held before
		// the counters existed (see CountUsage) must not make it negative.
		next.Instances, next.Cores, next.RAMMB = max(next.Instances, 0), max(next.Cores, 0), max(next.RAMMB, 0)
		b, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("store: encode usage: %w", err)
		}
		cmps := append(guards[:len(guards):len(guards)], clientv3.Compare(clientv3.ModRevision(qk), "=", rev))
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(append(ops[:len(ops):len(ops)], clientv3.OpPut(qk, string(b)))...).
			Else(clientv3.OpGet(qk)).Commit()
		if err != nil || resp.Succeeded {
			return resp, err
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		var now int64
		if len(kvs) == 1 {
			now = kvs[0].ModRevision
		}
		if now == rev {
			return resp, nil // the instance's own guard failed: ErrStale
		}
		if len(kvs) == 0 {
			u, rev = Usage{}, 0
		} else if u, rev, err = decodeUsage(kvs[0].Value, now); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// CountUsage makes the usage counters agree with the instance records
// once, the first time a Lucid that keeps them starts on a store: it
// counts every project's usage from its instances and writes the counters
// and a marker in one transaction, which fails (and is tried again) if an
// instance or a counter changed since the count. When the marker exists
// it does nothing.
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
		usage := map[string]Usage{}
		for _, r := range recs {
			if r.Err == nil {
				usage[r.State.Project] = usage[r.State.Project].add(UsageOf(&r.State, r.Transition))
			}
		}
		ops := []clientv3.Op{clientv3.OpPut(s.usageMarkerKey(), strconv.FormatInt(rev, 10))}
		for p, u := range usage {
			b, _ := json.Marshal(u)
			ops = append(ops, clientv3.OpPut(s.quotaKey(p), string(b)))
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
