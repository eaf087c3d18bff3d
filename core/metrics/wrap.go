package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lucid-project/lucid/core/policy"
)

// Validator is the validate hook of a policy module.
type Validator interface {
	Validate(ctx context.Context, req policy.ValidateRequest) (policy.Verdict, error)
}

// Decider is the reconcile hook of a policy module.
type Decider interface {
	Reconcile(ctx context.Context, req policy.ReconcileRequest) (policy.Decision, error)
}

// TimeValidator times v's calls into s.
func TimeValidator(v Validator, s *Set) Validator {
	if s == nil {
		return v
	}
	return timedValidator{v, s}
}

type timedValidator struct {
	v Validator
	s *Set
}

func (t timedValidator) Validate(ctx context.Context, req policy.ValidateRequest) (policy.Verdict, error) {
	start := time.Now()
	v, err := t.v.Validate(ctx, req)
	t.s.PolicyCall(string(policy.HookValidate), time.Since(start), err != nil)
	return v, err
}

// TimeDecider times d's calls into s.
func TimeDecider(d Decider, s *Set) Decider {
	if s == nil {
		return d
	}
	return timedDecider{d, s}
}

type timedDecider struct {
	d Decider
	s *Set
}

func (t timedDecider) Reconcile(ctx context.Context, req policy.ReconcileRequest) (policy.Decision, error) {
	start := time.Now()
	d, err := t.d.Reconcile(ctx, req)
	t.s.PolicyCall(string(policy.HookReconcile), time.Since(start), err != nil)
	return d, err
}

// ModuleStats exports a policy module's own counters (recycled instances,
// dropped log lines, discarded instances).
func (s *Set) ModuleStats(m *policy.Module) error {
	if s == nil {
		return nil
	}
	name := m.Stats().Name
	counter := func(metric, help string, f func(policy.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: metric, Help: help, ConstLabels: prometheus.Labels{"policy": name}},
			func() float64 { return float64(f(m.Stats())) })
	}
	for _, c := range []prometheus.Collector{
		counter("lucid_policy_instances_recycled_total", "Policy instances replaced on their call or memory budget.",
			func(st policy.Stats) uint64 { return st.Recycled.Calls + st.Recycled.Memory }),
		counter("lucid_policy_instances_discarded_total", "Policy instances thrown away after a failure.",
			func(st policy.Stats) uint64 { return st.Discarded }),
		counter("lucid_policy_log_lines_dropped_total", "Policy output lines dropped by the rate limit.",
			func(st policy.Stats) uint64 { return st.LogLinesDropped }),
	} {
		if err := s.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// CommitStats exports how many requests carried the store's guarded
// commits to etcd and how many commits they carried (group commit: their
// ratio is the mean group). stats reads the store's counters.
func (s *Set) CommitStats(stats func() (requests, commits uint64)) error {
	if s == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lucid_store_commit_requests_total",
			Help: "Requests that carried guarded commits to etcd, each one commit or a group of them."},
			func() float64 { r, _ := stats(); return float64(r) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lucid_store_commits_sent_total",
			Help: "Guarded commits sent to etcd, lost guards included; over lucid_store_commit_requests_total, the mean group."},
			func() float64 { _, c := stats(); return float64(c) }),
	} {
		if err := s.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
