package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/internal/testnode"
)

// peer sends requests to a node from one local address (127.0.0.x: Linux
// routes the whole 127/8 to the loopback interface), so a test can play
// several clients that a per-address limit tells apart.
type peer struct {
	base string
	hc   *http.Client
}

func newPeer(t *testing.T, base, ip string) *peer {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &peer{base: base, hc: &http.Client{Transport: tr}}
}

// answer is a response's code, headers and body (decoded when JSON).
type answer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request; it may run on any goroutine, so a failure to get
// an answer is reported with Errorf and returns code 0.
func (p *peer) do(t *testing.T, token, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, header: resp.Header, raw: string(b)}
	if len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &a.body); err != nil {
			t.Errorf("%s %s: %d, body not JSON: %q", method, path, a.code, b)
		}
	}
	return a
}

const createBody = `{"server": {"name": "limited", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`

// untilRefused sends req until it is refused with 429 (at most 100 times)
// and returns that answer. It fails the test unless the requests answered
// ok before it are at least the tokens left in the bucket (left), and at
// most those plus what the rate refilled since the bucket was last
// spent (since), rounded up.
func untilRefused(t *testing.T, left int, rate float64, since time.Time, ok int, req func() answer) answer {
	t.Helper()
	for served := 0; served < 100; served++ {
		a := req()
		if a.code == http.StatusTooManyRequests {
			most := left + int(math.Ceil(time.Since(since).Seconds()*rate))
			if served < left || served > most {
				t.Fatalf("refused after %d requests; want between %d and %d", served, left, most)
			}
			return a
		}
		if a.code != ok {
			t.Fatalf("request %d: %d %s, want %d until refused", served+1, a.code, a.raw, ok)
		}
	}
	t.Fatal("100 requests were never refused")
	return answer{}
}

// wantRefusal checks a 429: Retry-After in whole seconds, and Nova's
// overLimit body (Keystone's error body under /identity) with the
// message naming the client.
func wantRefusal(t *testing.T, a answer, identity bool, retryAfter int, msg string) {
	t.Helper()
	ra := strconv.Itoa(retryAfter)
	if got := a.header.Get("Retry-After"); got != ra {
		t.Errorf("Retry-After %q, want %q", got, ra)
	}
	var want map[string]any
	if identity {
		want = map[string]any{"error": map[string]any{"code": 429.0, "message": msg, "title": "Too Many Requests"}}
	} else {
		want = map[string]any{"overLimit": map[string]any{"code": 429.0, "message": msg, "retryAfter": ra}}
	}
	if fmt.Sprint(a.body) != fmt.Sprint(want) {
		t.Errorf("429 body\n got %v\nwant %v", a.body, want)
	}
}

// These tests refuse at once (max_delay = "0s"), so that every request
// past the burst is refused; TestRateLimitHolds covers the delay.

// With auth on, each user has a bucket: alice is refused past her burst
// (reads still pass) while bob is served; token requests are limited per
// address, apart from the users' buckets; and alice is served again once
// the Retry-After she was given has passed.
func TestRateLimitPerUser(t *testing.T) {
	const burst, rate = 5, 1.0
	before := time.Now()
	n := testnode.Start(t, testnode.Options{Extra: users(t), API: `  rate_limit {
    requests_per_second = 1
    burst               = 5
    max_delay           = "0s"
  }`})
	// Three token requests from 127.0.0.1 so far: the admin's, alice's
	// and bob's.
	alice, bob := login(t, n, "alice", "p1"), login(t, n, "bob", "p2")
	local, other := newPeer(t, n.Base, "127.0.0.1"), newPeer(t, n.Base, "127.0.0.2")

	refused := untilRefused(t, burst, rate, time.Now(), http.StatusAccepted, func() answer {
		return local.do(t, alice, "POST", "/v2.1/servers", createBody)
	})
	wantRefusal(t, refused, false, 1,
		"This request was rate-limited: user alice may make 1 changing requests per second (bursts of 5); retry after 1 s")
	if a := local.do(t, alice, "GET", "/v2.1/servers", ""); a.code != http.StatusOK {
		t.Fatalf("alice's read while limited: %d %s", a.code, a.raw)
	}
	if a := local.do(t, bob, "POST", "/v2.1/servers", createBody); a.code != http.StatusAccepted {
		t.Fatalf("bob while alice is limited: %d %s", a.code, a.raw)
	}

	// Password guessing from 127.0.0.1: its address's bucket (three
	// spent on logins) runs out; 127.0.0.2 and the users' buckets are
	// another matter.
	guess := `{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "alice", "domain": {"name": "Default"}, "password": "guess"}}},
		"scope": {"project": {"name": "p1", "domain": {"id": "default"}}}}}`
	refused = untilRefused(t, burst-3, rate, before, http.StatusUnauthorized, func() answer {
		return local.do(t, "", "POST", "/identity/v3/auth/tokens", guess)
	})
	wantRefusal(t, refused, true, 1,
		"This request was rate-limited: address 127.0.0.1 may make 1 changing requests per second (bursts of 5); retry after 1 s")
	if a := other.do(t, "", "POST", "/identity/v3/auth/tokens", guess); a.code != http.StatusUnauthorized {
		t.Fatalf("a guess from another address: %d %s, want 401", a.code, a.raw)
	}
	if a := local.do(t, bob, "POST", "/v2.1/servers", createBody); a.code != http.StatusAccepted {
		t.Fatalf("bob from the limited address: %d %s", a.code, a.raw)
	}

	// The advertised wait is enough: a token has refilled by then.
	ra, _ := strconv.Atoi(refused.header.Get("Retry-After"))
	time.Sleep(time.Duration(ra) * time.Second)
	if a := local.do(t, alice, "POST", "/v2.1/servers", createBody); a.code != http.StatusAccepted {
		t.Fatalf("alice after her Retry-After: %d %s", a.code, a.raw)
	}

	m := local.do(t, n.Token, "GET", "/metrics", "")
	for _, line := range []string{`lucid_api_throttled_total{by="address"} 1`, `lucid_api_throttled_total{by="user"} 1`} {
		if !strings.Contains(m.raw, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// With auth off, the limit is kept per client address.
func TestRateLimitPerAddressWithoutAuth(t *testing.T) {
	const burst, rate = 2, 0.5
	n := testnode.Start(t, testnode.Options{Extra: "auth { enabled = false }", API: `  rate_limit {
    requests_per_second = 0.5
    burst               = 2
    max_delay           = "0s"
  }`})
	local, other := newPeer(t, n.Base, "127.0.0.1"), newPeer(t, n.Base, "127.0.0.2")
	refused := untilRefused(t, burst, rate, time.Now(), http.StatusAccepted, func() answer {
		return local.do(t, "", "POST", "/v2.1/servers", createBody)
	})
	ra, _ := strconv.Atoi(refused.header.Get("Retry-After"))
	if ra != 1 && ra != 2 {
		t.Fatalf("Retry-After %d; a token takes 2s at 0.5/s, so 1 or 2", ra)
	}
	wantRefusal(t, refused, false, ra, fmt.Sprintf(
		"This request was rate-limited: address 127.0.0.1 may make 0.5 changing requests per second (bursts of 2); retry after %d s", ra))
	if a := other.do(t, "", "POST", "/v2.1/servers", createBody); a.code != http.StatusAccepted {
		t.Fatalf("another address: %d %s", a.code, a.raw)
	}
	if a := local.do(t, "", "GET", "/v2.1/servers", ""); a.code != http.StatusOK {
		t.Fatalf("a read from the limited address: %d %s", a.code, a.raw)
	}
}

// By default a request over the limit is held until its token is due, if
// that is within max_delay (1s), then served: a sequential client is
// slowed to the rate, never refused; only what would wait longer is
// refused, after being held.
func TestRateLimitHolds(t *testing.T) {
	const burst, rate = 2, 2.0
	n := testnode.Start(t, testnode.Options{Extra: "auth { enabled = false }", API: `  rate_limit {
    requests_per_second = 2
    burst               = 2
  }`})
	local := newPeer(t, n.Base, "127.0.0.1")
	for i := range burst + 3 {
		if a := local.do(t, "", "POST", "/v2.1/servers", createBody); a.code != http.StatusAccepted {
			t.Fatalf("sequential request %d: %d %s; want it held and served", i+1, a.code, a.raw)
		}
	}

	// Concurrently, from another address (a bucket of its own): the
	// burst at once, a second's worth (2) held, the rest refused, give or
	// take what the rate refills while they arrive.
	other := newPeer(t, n.Base, "127.0.0.2")
	const sent = 12
	start := time.Now()
	codes := make(chan answer, sent)
	for range sent {
		go func() { codes <- other.do(t, "", "POST", "/v2.1/servers", createBody) }()
	}
	served, refused := 0, 0
	for range sent {
		a := <-codes
		switch a.code {
		case http.StatusAccepted:
			served++
		case http.StatusTooManyRequests:
			refused++
			wantRefusal(t, a, false, 1, "This request was rate-limited: address 127.0.0.2 may make 2 changing requests per second (bursts of 2); retry after 1 s")
		default:
			t.Fatalf("%d %s", a.code, a.raw)
		}
	}
	most := burst + 2 + int(math.Ceil(time.Since(start).Seconds()*rate))
	if served < burst+2 || served > most || served+refused != sent {
		t.Fatalf("%d served and %d refused of %d; want between %d and %d served, the rest refused", served, refused, sent, burst+2, most)
	}
}
