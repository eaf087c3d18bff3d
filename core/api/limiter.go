package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultRateLimitKeys is how many clients' buckets a rate limiter keeps
// at most when RateLimit.MaxKeys is unset: about 10 MB at the cap.
const DefaultRateLimitKeys = 100_000

// DefaultRateLimitDelay is how long a request over the limit may be held
// when RateLimit.MaxDelay is unset.
const DefaultRateLimitDelay = time.Second

// RateLimit bounds how fast one client may send requests that change
// something (any method but GET, HEAD and OPTIONS): a token bucket per
// client, refilled at PerSecond and holding at most Burst. The client is
// the authenticated user; with authentication disabled, and for token
// requests (POST /identity/v3/auth/tokens, which carry a password, not a
// token), it is the client's address. Reads are never limited.
//
// A request that finds the bucket empty is held until its token is due,
// if that is at most MaxDelay away, and then served: a client is slowed
// to its rate, not failed, and one that sends on many connections at once
// only queues behind itself. Beyond that it is refused with 429 and
// Retry-After, but only after being held for MaxDelay, so that a client
// ignoring 429s gets at most one answer per connection per MaxDelay
// instead of thousands of cheap refusals a second that would take the
// CPU from everyone else (measured: BenchmarkFlood in core/node).
//
// The zero value is off.
type RateLimit struct {
	// PerSecond is the sustained rate; 0 (or less) turns the limit off.
	PerSecond float64
	// Burst is how many requests a client that was idle may send at
	// once; 0 means twice PerSecond, at least 1.
	Burst int
	// MaxDelay bounds how long a request over the limit is held; 0
	// means DefaultRateLimitDelay, and a negative value holds nothing
	// (refused at once).
	MaxDelay time.Duration
	// MaxKeys bounds how many clients' buckets are kept; 0 means
	// DefaultRateLimitKeys. Buckets are dropped as soon as they have
	// refilled (an idle client's is the same as a new one), so this cap
	// matters only when more clients than that were active within the
	// time a bucket takes to refill; then a random bucket is dropped,
	// which gives that client a full burst again, never less.
	MaxKeys int
}

// limiter is RateLimit's token buckets, one per key, safe for concurrent
// use. A nil *limiter allows everything.
type limiter struct {
	rate, burst float64
	delay       time.Duration // RateLimit.MaxDelay, 0 for none
	max         int
	// refill is how long the emptiest bucket (in debt for a delay's
	// worth of tokens) takes to fill: a bucket not touched for that long
	// is full and can be forgotten.
	refill time.Duration
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time // the last sweep for full buckets
}

// bucket holds tokens as of at; below zero while requests wait for
// tokens not yet due.
type bucket struct {
	tokens float64
	at     time.Time
}

// newLimiter returns the limiter for rl, or nil when rl is off.
func newLimiter(rl RateLimit) *limiter {
	if !(rl.PerSecond > 0) || math.IsInf(rl.PerSecond, 1) {
		return nil
	}
	burst := float64(rl.Burst)
	if rl.Burst <= 0 {
		burst = math.Max(1, math.Ceil(2*rl.PerSecond))
	}
	max := rl.MaxKeys
	if max <= 0 {
		max = DefaultRateLimitKeys
	}
	delay := rl.MaxDelay
	switch {
	case delay == 0:
		delay = DefaultRateLimitDelay
	case delay < 0:
		delay = 0
	}
	l := &limiter{rate: rl.PerSecond, burst: burst, delay: delay, max: max, now: time.Now, buckets: map[string]*bucket{}}
	l.refill = l.dur(burst/rl.PerSecond) + delay
	return l
}

// take spends one of key's tokens. If there is one now, it returns
// (0, true, 0). If the next is due within the limiter's delay, it spends
// that one in advance and returns (how long until it is due, true, 0):
// the caller waits that long. Otherwise it spends nothing and returns
// (0, false, how long until a request would be accepted again).
func (l *limiter) take(key string) (wait time.Duration, ok bool, retry time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// Sweep first: a bucket swept away is full, the same as a new one.
	if now.Sub(l.swept) >= l.refill {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		l.makeRoom()
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	} else {
		b.tokens = l.level(b, now)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0, true, 0
	}
	due := l.dur((1 - b.tokens) / l.rate)
	if due <= l.delay {
		b.tokens--
		return due, true, 0
	}
	return 0, false, due - l.delay
}

// maxWait caps the durations the limiter computes: a tiny rate or a huge
// burst would overflow a Duration.
const maxWait = 24 * time.Hour

// dur converts seconds to a Duration, rounding up to whole nanoseconds,
// so a wait is never a hair short of its token; at most maxWait.
func (l *limiter) dur(secs float64) time.Duration {
	ns := math.Ceil(secs * float64(time.Second))
	if !(ns < float64(maxWait)) {
		return maxWait
	}
	return time.Duration(ns)
}

// level is b's tokens at now.
func (l *limiter) level(b *bucket, now time.Time) float64 {
	d := now.Sub(b.at)
	if d <= 0 {
		return b.tokens
	}
	return math.Min(l.burst, b.tokens+d.Seconds()*l.rate)
}

// sweep forgets every bucket that has refilled. Called at most once per
// refill period, so it costs O(1) per request amortized.
func (l *limiter) sweep(now time.Time) {
	l.swept = now
	for k, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// makeRoom keeps the map under max before a new key is added by
// dropping a random bucket (map iteration order is random). take has
// just swept if a sweep was due.
func (l *limiter) makeRoom() {
	for k := range l.buckets {
		if len(l.buckets) < l.max {
			break
		}
		delete(l.buckets, k)
	}
}

// size is how many buckets are kept.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// errRateLimited is a request over its client's rate limit: 429.
var errRateLimited = errors.New("rate limited")

// rateError is a request refused by the rate limit; writeError sends
// Retry-After from it.
type rateError struct {
	who        string // "user alice" or "address 192.0.2.1"
	perSecond  float64
	burst      float64
	retryAfter int // whole seconds, at least 1
}

func (e *rateError) Error() string {
	return fmt.Sprintf("This request was rate-limited: %s may make %s changing requests per second (bursts of %s); retry after %d s",
		e.who, strconv.FormatFloat(e.perSecond, 'f', -1, 64), strconv.FormatFloat(e.burst, 'f', -1, 64), e.retryAfter)
}

func (e *rateError) Is(target error) bool { return target == errRateLimited }

// mutating reports whether r's method may change something.
func mutating(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// throttle applies the rate limit to r, whose principal is set (or not,
// for a public request): it returns nil once r may go on (after holding
// it until its token is due, if need be), or a *rateError, after holding
// r for the limiter's delay. It returns ctx's error if the client goes
// away meanwhile. The key is the user when the request carries a
// validated token, else the client's address (see clientAddr).
func (s *Server) throttle(r *http.Request) error {
	if s.limiter == nil || !mutating(r) {
		return nil
	}
	var key, who, kind string
	if p := principal(r); s.auth != nil && p.User != "" {
		key, who, kind = "user\x00"+p.User, "user "+p.User, "user"
	} else {
		a := clientAddr(r)
		key, who, kind = "addr\x00"+a, "address "+a, "address"
	}
	wait, ok, retry := s.limiter.take(key)
	if ok {
		return hold(r, wait)
	}
	s.metrics.Throttled(kind)
	if err := hold(r, s.limiter.delay); err != nil {
		return err
	}
	secs := int(math.Ceil((retry - s.limiter.delay).Seconds()))
	if secs < 1 {
		secs = 1
	}
	return &rateError{who: who, perSecond: s.limiter.rate, burst: s.limiter.burst, retryAfter: secs}
}

// hold waits d, or until the client goes away (its error).
func hold(r *http.Request, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.Context().Done():
		return r.Context().Err()
	}
}

// clientAddr is the address a request's limit is kept under: the peer's
// IP (proxies' forwarding headers are not trusted: behind a proxy every
// client shares its address), an IPv6 address by its /64, which one
// host usually holds whole.
func clientAddr(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr // not IP:port (a test's handler call); keep it whole
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
