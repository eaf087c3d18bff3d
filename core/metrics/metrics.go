// Package metrics is what a node tells Prometheus: reconciler sweeps and
// decisions, status changes by cause, policy calls, driver calls and
// restarts, API requests. A node owns one Set on a registry of its own
// (no package-level state), served at /metrics together with the etcd
// member's metrics when etcd runs in the process.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set holds a node's metrics. A nil *Set is valid and records nothing, so
// components take one without checking.
type Set struct {
	registry *prometheus.Registry

	sweeps         prometheus.Counter
	sweepSeconds   prometheus.Histogram
	checked        prometheus.Counter
	cases          *prometheus.CounterVec
	decisions      *prometheus.CounterVec
	orphans        prometheus.Counter
	policySeconds  *prometheus.HistogramVec
	policyFailures *prometheus.CounterVec
	statusChanges  *prometheus.CounterVec
	apiRequests    *prometheus.CounterVec
	apiSeconds     *prometheus.HistogramVec
	apiThrottled   *prometheus.CounterVec
	driverCalls    *prometheus.CounterVec
	driverSeconds  *prometheus.HistogramVec
}

// New returns a Set registered on a fresh registry, with the Go runtime
// and process collectors.
func New() *Set {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) prometheus.Collector { r.MustRegister(c); return c }
	s := &Set{registry: r}
	s.sweeps = f(prometheus.NewCounter(prometheus.CounterOpts{Name: "lucid_reconcile_sweeps_total",
		Help: "Reconciler sweeps completed on this node."})).(prometheus.Counter)
	s.sweepSeconds = f(prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lucid_reconcile_sweep_seconds",
		Help: "How long a reconciler sweep took.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)})).(prometheus.Histogram)
	s.checked = f(prometheus.NewCounter(prometheus.CounterOpts{Name: "lucid_reconcile_instances_checked_total",
		Help: "Instance records compared with their hypervisor by sweeps."})).(prometheus.Counter)
	s.cases = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lucid_reconcile_cases_total",
		Help: "Disagreements handed to the reconcile policy, by case."}, []string{"case"})).(*prometheus.CounterVec)
	s.decisions = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lucid_reconcile_decisions_total",
		Help: "Reconcile policy decisions, by case and decision."}, []string{"case", "decision"})).(*prometheus.CounterVec)
	s.orphans = f(prometheus.NewCounter(prometheus.CounterOpts{Name: "lucid_reconcile_orphans_total",
		Help: "Orphaned transitions (their node's lease expired) found by this node while it led."})).(prometheus.Counter)
	s.policySeconds = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lucid_policy_call_seconds",
		Help: "Policy call duration, by hook.", Buckets: prometheus.ExponentialBuckets(0.00002, 3, 10)}, []string{"hook"})).(*prometheus.HistogramVec)
	s.policyFailures = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lucid_policy_failures_total",
		Help: "Policy calls that failed (trap, timeout, bad answer) and got the fallback, by hook."}, []string{"hook"})).(*prometheus.CounterVec)
	s.statusChanges = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lucid_status_changes_total",
		Help: "Status changes written, by cause (api, driver, reconciler, policy)."}, []string{"cause"})).(*prometheus.CounterVec)
	s.apiRequests = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lucid_api_requests_total",
		Help: "API requests, by route and status code."}, []string{"route", "code"})).(*prometheus.CounterVec)
	s.apiSeconds = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lucid_api_request_seconds",
		Help: "API request duration, by route.", Buckets: prometheus.ExponentialBuckets(0.0002, 4, 9)}, []string{"route"})).(*prometheus.HistogramVec)
	s.apiThrottled = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lucid_api_throttled_total",
		Help: "API requests refused with 429 by the rate limit, by what the limit was kept for (user, address)."}, []string{"by"})).(*prometheus.CounterVec)
	s.driverCalls = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lucid_driver_calls_total",
		Help: "Driver calls, by driver, operation and result (ok, error, unavailable)."}, []string{"driver", "op", "result"})).(*prometheus.CounterVec)
	s.driverSeconds = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lucid_driver_call_seconds",
		Help: "Driver call duration, by driver and operation.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"driver", "op"})).(*prometheus.HistogramVec)
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// Handler serves the Set's metrics in Prometheus' text format, followed by
// those of extra (for example prometheus.DefaultGatherer, where the
// embedded etcd member registers its own).
func (s *Set) Handler(extra ...prometheus.Gatherer) http.Handler {
	gs := prometheus.Gatherers{s.registry}
	gs = append(gs, extra...)
	return promhttp.HandlerFor(gs, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Register adds a collector (a component's own counters) to the Set.
func (s *Set) Register(c prometheus.Collector) error {
	if s == nil {
		return nil
	}
	return s.registry.Register(c)
}

// Swept records a completed sweep.
func (s *Set) Swept(took time.Duration, checked int) {
	if s == nil {
		return
	}
	s.sweeps.Inc()
	s.sweepSeconds.Observe(took.Seconds())
	s.checked.Add(float64(checked))
}

// Decided records a reconcile case and the decision taken.
func (s *Set) Decided(kind, decision string) {
	if s == nil {
		return
	}
	s.cases.WithLabelValues(kind).Inc()
	s.decisions.WithLabelValues(kind, decision).Inc()
}

// Orphan records an orphaned transition found.
func (s *Set) Orphan() {
	if s != nil {
		s.orphans.Inc()
	}
}

// PolicyCall records one policy call and whether it failed.
func (s *Set) PolicyCall(hook string, took time.Duration, failed bool) {
	if s == nil {
		return
	}
	s.policySeconds.WithLabelValues(hook).Observe(took.Seconds())
	if failed {
		s.policyFailures.WithLabelValues(hook).Inc()
	}
}

// StatusChanged records a status change written, by cause.
func (s *Set) StatusChanged(cause string) {
	if s != nil {
		s.statusChanges.WithLabelValues(cause).Inc()
	}
}

// Request records one API request by route pattern and status code.
func (s *Set) Request(route string, code int, took time.Duration) {
	if s == nil {
		return
	}
	s.apiRequests.WithLabelValues(route, codeLabel(code)).Inc()
	s.apiSeconds.WithLabelValues(route).Observe(took.Seconds())
}

// Throttled records a request refused by the API's rate limit; by is
// what the limit was kept for: "user" or "address".
func (s *Set) Throttled(by string) {
	if s != nil {
		s.apiThrottled.WithLabelValues(by).Inc()
	}
}

// DriverCall records one driver call.
func (s *Set) DriverCall(driver, op, result string, took time.Duration) {
	if s == nil {
		return
	}
	s.driverCalls.WithLabelValues(driver, op, result).Inc()
	s.driverSeconds.WithLabelValues(driver, op).Observe(took.Seconds())
}

func codeLabel(code int) string {
	const digits = "0123456789"
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{digits[code/100], digits[code/10%10], digits[code%10]})
}
