package api

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// clock is a settable time for the limiter's tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func testLimiter(rl RateLimit) (*limiter, *clock) {
	l := newLimiter(rl)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l.now = c.now
	l.swept = c.t
	return l, c
}

func TestNewLimiterOff(t *testing.T) {
	for _, rl := range []RateLimit{{}, {PerSecond: 0, Burst: 10}, {PerSecond: -1}} {
		if l := newLimiter(rl); l != nil {
			t.Errorf("%+v: a limiter (%+v); want none (off)", rl, l)
		}
	}
}

func TestNewLimiterDefaults(t *testing.T) {
	cases := []struct {
		rl     RateLimit
		burst  float64
		delay  time.Duration
		max    int
		refill time.Duration
	}{
		{RateLimit{PerSecond: 50}, 100, time.Second, DefaultRateLimitKeys, 3 * time.Second},
		{RateLimit{PerSecond: 50, Burst: 5, MaxDelay: -1}, 5, 0, DefaultRateLimitKeys, 100 * time.Millisecond},
		{RateLimit{PerSecond: 0.1, MaxDelay: time.Millisecond}, 1, time.Millisecond, DefaultRateLimitKeys, 10*time.Second + time.Millisecond},
		{RateLimit{PerSecond: 1.5, MaxKeys: 7}, 3, time.Second, 7, 3 * time.Second},
	}
	for _, tc := range cases {
		l := newLimiter(tc.rl)
		if l.burst != tc.burst || l.delay != tc.delay || l.max != tc.max || l.refill != tc.refill {
			t.Errorf("%+v: burst %v, delay %v, max %d, refill %v; want %v, %v, %d, %v", tc.rl, l.burst, l.delay, l.max, l.refill, tc.burst, tc.delay, tc.max, tc.refill)
		}
	}
}

// A key spends its burst, is refused with the time until its next token,
// gets exactly the tokens that time refills, and never more than the
// burst however long it idles; other keys are not affected.
func TestLimiterTake(t *testing.T) {
	l, c := testLimiter(RateLimit{PerSecond: 2, Burst: 3, MaxDelay: -1})
	type step struct {
		advance time.Duration
		key     string
		ok      bool
		wait    time.Duration // until accepted again, when refused
	}
	steps := []step{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
		{0, "a", false, 500 * time.Millisecond}, // a refusal spends nothing
		{0, "b", true, 0},                       // b has its own bucket
		{200 * time.Millisecond, "a", false, 300 * time.Millisecond},
		{300 * time.Millisecond, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
		{time.Hour, "a", true, 0}, // refilled to the burst, not beyond
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		c.advance(s.advance)
		held, ok, retry := l.take(s.key)
		if held != 0 || ok != s.ok || retry != s.wait {
			t.Fatalf("step %d (%+v): got held %v, %v, retry %v", i, s, held, ok, retry)
		}
	}
}

// With a delay, a request finds its token spent in advance and waits for
// it, as long as it is due within the delay; past that, it is refused,
// with the time until a request would be held no longer than the delay.
func TestLimiterDelay(t *testing.T) {
	l, c := testLimiter(RateLimit{PerSecond: 4, Burst: 2, MaxDelay: time.Second})
	type step struct {
		advance time.Duration
		held    time.Duration
		ok      bool
		retry   time.Duration
	}
	steps := []step{
		{0, 0, true, 0},
		{0, 0, true, 0},
		{0, 250 * time.Millisecond, true, 0},
		{0, 500 * time.Millisecond, true, 0},
		{0, 750 * time.Millisecond, true, 0},
		{0, time.Second, true, 0},
		{0, 0, false, 250 * time.Millisecond}, // a refusal spends nothing
		{0, 0, false, 250 * time.Millisecond},
		{100 * time.Millisecond, 0, false, 150 * time.Millisecond},
		{150 * time.Millisecond, time.Second, true, 0},
		{3 * time.Second, 0, true, 0}, // refilled to the burst
		{0, 0, true, 0},
		{0, 250 * time.Millisecond, true, 0},
	}
	for i, s := range steps {
		c.advance(s.advance)
		held, ok, retry := l.take("a")
		if held != s.held || ok != s.ok || retry != s.retry {
			t.Fatalf("step %d (%+v): got held %v, %v, retry %v", i, s, held, ok, retry)
		}
	}
}

// Memory stays bounded: buckets that have refilled are forgotten at the
// next sweep, whatever their number, and the map never holds more than
// MaxKeys even when that many clients are active at once. A client still
// short of tokens keeps its bucket across a sweep.
func TestLimiterEviction(t *testing.T) {
	l, c := testLimiter(RateLimit{PerSecond: 10, Burst: 10, MaxKeys: 1000, MaxDelay: -1})
	// The flooder empties its bucket.
	for range 10 {
		l.take("flooder")
	}
	for i := range 5000 {
		l.take(fmt.Sprintf("client-%d", i))
		if n := l.size(); n > 1000 {
			t.Fatalf("after %d clients the limiter holds %d buckets; MaxKeys is 1000", i+1, n)
		}
	}
	if n := l.size(); n != 1000 {
		t.Fatalf("%d buckets at the cap, want 1000", n)
	}

	// 5000 one-request clients and a flooder that keeps spending: at the
	// first sweep, a refill period (1s) after the last, the clients'
	// buckets have refilled and go; the flooder's has not and stays.
	l, c = testLimiter(RateLimit{PerSecond: 10, Burst: 10, MaxDelay: -1})
	for range 10 {
		l.take("flooder")
	}
	for i := range 5000 {
		l.take(fmt.Sprintf("client-%d", i))
	}
	c.advance(500 * time.Millisecond)
	for i := range 5 {
		if _, ok, _ := l.take("flooder"); !ok {
			t.Fatalf("the flooder's token %d of the 5 that 500ms refilled was refused", i+1)
		}
	}
	if n := l.size(); n != 5001 {
		t.Fatalf("%d buckets before a refill period passed, want 5001", n)
	}
	c.advance(500 * time.Millisecond)
	if _, ok, _ := l.take("flooder"); !ok {
		t.Fatal("the flooder's token refilled in the last 500ms was refused")
	}
	if n := l.size(); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1 (the flooder's)", n)
	}
	for range 4 {
		l.take("flooder")
	}
	if _, ok, wait := l.take("flooder"); ok || wait != 100*time.Millisecond {
		t.Fatalf("the flooder after the sweep: %v, %v; want refused for 100ms (its bucket was kept, not renewed)", ok, wait)
	}
}

func TestClientAddr(t *testing.T) {
	cases := map[string]string{
		"192.0.2.7:4711":                "192.0.2.7",
		"[::ffff:192.0.2.7]:4711":       "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443":    "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":             "fe80::/64",
		"[::1]:80":                      "::/64",
		"not an address":                "not an address",
		"127.0.0.1:0":                   "127.0.0.1",
		"[2001:db8:1:3:3:4:5:6]:443":    "2001:db8:1:3::/64",
		"[2001:db8:1:2:3:4:5:6%x]:1234": "2001:db8:1:2::/64",
	}
	for in, want := range cases {
		r := &http.Request{RemoteAddr: in}
		if got := clientAddr(r); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// Retry-After is the whole seconds, at least 1, from the refusal (after
// it was held for the delay, here 10ms of real time) until a request
// would be accepted again.
func TestRateErrorRetryAfter(t *testing.T) {
	l, c := testLimiter(RateLimit{PerSecond: 0.25, Burst: 1, MaxDelay: 10 * time.Millisecond})
	s := &Server{limiter: l}
	r := &http.Request{Method: http.MethodPost, RemoteAddr: "192.0.2.1:1"}
	if err := s.throttle(r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		advance time.Duration
		want    int
	}{{0, 4}, {time.Second, 3}, {2900 * time.Millisecond, 1}, {50 * time.Millisecond, 1}} {
		c.advance(tc.advance)
		err := s.throttle(r)
		re, ok := err.(*rateError)
		if !ok || re.retryAfter != tc.want {
			t.Fatalf("after %v more: %v; want Retry-After %d", tc.advance, err, tc.want)
		}
	}
	if err := s.throttle(&http.Request{Method: http.MethodGet, RemoteAddr: "192.0.2.1:1"}); err != nil {
		t.Fatalf("a GET was limited: %v", err)
	}
	want := "This request was rate-limited: address 192.0.2.1 may make 0.25 changing requests per second (bursts of 1); retry after 1 s"
	if err := s.throttle(r); err == nil || err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

// Extreme settings give capped waits, not overflowed ones.
func TestLimiterExtremes(t *testing.T) {
	l, _ := testLimiter(RateLimit{PerSecond: 1e-12, Burst: 1, MaxDelay: -1})
	if l.refill != maxWait {
		t.Fatalf("refill %v, want %v", l.refill, maxWait)
	}
	l.take("a")
	if _, ok, retry := l.take("a"); ok || retry != maxWait {
		t.Fatalf("%v, retry %v; want refused, retry %v", ok, retry, maxWait)
	}
	l, _ = testLimiter(RateLimit{PerSecond: 1, Burst: 1 << 62})
	if l.refill != maxWait+DefaultRateLimitDelay {
		t.Fatalf("refill %v, want %v", l.refill, maxWait+DefaultRateLimitDelay)
	}
}
