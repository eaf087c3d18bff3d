package policy_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/policy"
)

// fakeClock is a time source the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var floodLine = regexp.MustCompile(`msg="flood (line|error) \d+"`)

// logged returns the flood lines and the drop warnings in the log, in
// order, as "line" and "dropped N".
func logged(logs *logBuffer) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		switch {
		case floodLine.MatchString(l):
			out = append(out, "line")
		case strings.Contains(l, "lines of policy output over the limit"):
			var n int
			if _, err := fmt.Sscanf(l[strings.Index(l, "dropped="):], "dropped=%d", &n); err != nil {
				out = append(out, "bad warning: "+l)
			} else {
				out = append(out, fmt.Sprintf("dropped %d", n))
			}
		}
	}
	return out
}

// TestLogRateLimit checks the log budget with a frozen clock: 2 lines/s
// hold a burst of 10 lines.
func TestLogRateLimit(t *testing.T) {
	e, logs := newEngine(t)
	m := load(t, e, policy.Config{Name: "chatty", Path: policy.SDKGuestWasm, PoolSize: 1, LogLinesPerSecond: 2, Timeout: 10 * time.Second})
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	m.SetLogClock(clock.Now)
	lines := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = "line"
		}
		return s
	}
	steps := []struct {
		name    string
		advance time.Duration
		call    string
		want    []string // what this step adds to the log
		dropped uint64   // Stats.LogLinesDropped after it
	}{
		// The burst goes through; the rest is summarized after the call.
		{"burst", 0, "flood 500", append(lines(10), "dropped 490"), 490},
		// No budget left, and a summary was written just now: silence.
		{"empty", 0, "flood 500", nil, 990},
		// 10 s later the budget is full again and the summary is due:
		// it comes before the first line that gets through.
		{"resumed", 10 * time.Second, "flood 3", append([]string{"dropped 500"}, lines(3)...), 990},
		// 7 lines were left; 1 s refills 2 more. The 3 dropped wait for
		// the next summary: the last was 1 s ago.
		{"refill", time.Second, "flood 12", lines(9), 993},
	}
	before := 0
	for _, st := range steps {
		clock.Add(st.advance)
		if v, err := m.Validate(context.Background(), req(st.call)); err != nil || !v.Allow {
			t.Fatalf("%s: Validate = %+v, %v", st.name, v, err)
		}
		got := logged(logs)
		if added := got[before:]; strings.Join(added, ",") != strings.Join(st.want, ",") {
			t.Errorf("%s: logged %v, want %v", st.name, added, st.want)
		}
		before = len(got)
		if d := m.Stats().LogLinesDropped; d != st.dropped {
			t.Errorf("%s: LogLinesDropped = %d, want %d", st.name, d, st.dropped)
		}
	}
}

// TestLogFlood runs a guest that writes to stdout and stderr until its
// time is up: the host logs the burst, drops the rest, and says how many
// it dropped when the module closes.
func TestLogFlood(t *testing.T) {
	e, logs := newEngine(t)
	m := load(t, e, policy.Config{Name: "chatty", Path: policy.SDKGuestWasm, PoolSize: 1, LogLinesPerSecond: 2, Timeout: 300 * time.Millisecond})
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	m.SetLogClock(clock.Now)
	if _, err := m.Validate(context.Background(), req("flood")); !errors.Is(err, policy.ErrTimeout) {
		t.Fatalf("flood: err = %v, want ErrTimeout", err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	dropped := m.Stats().LogLinesDropped
	got := logged(logs)
	// The first summary comes at the end of the call; anything dropped
	// while the instance was closed comes at Close.
	var lines, reported uint64
	for _, g := range got {
		var n uint64
		if g == "line" {
			lines++
		} else if _, err := fmt.Sscanf(g, "dropped %d", &n); err == nil {
			reported += n
		} else {
			t.Errorf("unexpected log entry %q", g)
		}
	}
	t.Logf("%d lines logged, %d dropped", lines, dropped)
	if lines != 10 || dropped == 0 || reported != dropped {
		t.Errorf("logged %d lines and reported %d dropped; want the burst of 10 and all %d dropped reported", lines, reported, dropped)
	}
}
