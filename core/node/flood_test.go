package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lucid-project/lucid/internal/testnode"
)

// The flood: floodUsers users, each on floodConns connections, create as
// fast as they can, ignoring 429, beside one well-behaved user.
const (
	floodUsers = 4
	floodConns = 16
)

// floodConfig declares the users of BenchmarkFlood, each a member of a
// project of its own, with the password "pw": "good" and flood1..4. No
// quota block: every project's quota is unlimited.
func floodConfig(b *testing.B) string {
	b.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	names := []string{"good"}
	for i := 1; i <= floodUsers; i++ {
		names = append(names, fmt.Sprintf("flood%d", i))
	}
	for _, u := range names {
		fmt.Fprintf(&sb, "project %q {}\nuser %q {\n  password_hash = %q\n  roles = { %q = \"member\" }\n}\n", u, u, h, u)
	}
	return sb.String()
}

// floodClient is one user's HTTP client.
type floodClient struct {
	base, token  string
	hc           *http.Client
	post, active time.Duration
}

// post sends a create and returns the status code, the new server's id
// (on 202) and Retry-After (on 429).
func (c *floodClient) create(ctx context.Context) (code int, id string, retryAfter int, err error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/v2.1/servers",
		strings.NewReader(`{"server": {"name": "flood", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`))
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", 0, err
	}
	switch resp.StatusCode {
	case http.StatusAccepted:
		var out struct {
			Server struct{ ID string } `json:"server"`
		}
		err = json.Unmarshal(body, &out)
		return resp.StatusCode, out.Server.ID, 0, err
	case http.StatusTooManyRequests:
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		return resp.StatusCode, "", ra, err
	}
	return resp.StatusCode, "", 0, fmt.Errorf("create: %d %s", resp.StatusCode, body)
}

// status reads a server's status through the compute API.
func (c *floodClient) status(ctx context.Context, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v2.1/servers/"+id, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Auth-Token", c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Server struct{ Status string } `json:"server"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("show %s: %d %v", id, resp.StatusCode, err)
	}
	return out.Server.Status, nil
}

// createActive is the well-behaved user's create: POST, waiting out any
// Retry-After it is given, then polling the server until ACTIVE. It
// returns how many 429s it got.
func (c *floodClient) createActive(ctx context.Context) (int, error) {
	refused := 0
	for {
		t0 := time.Now()
		code, id, ra, err := c.create(ctx)
		c.post += time.Since(t0)
		if err != nil {
			return refused, err
		}
		if code == http.StatusTooManyRequests {
			refused++
			time.Sleep(time.Duration(ra) * time.Second)
			continue
		}
		for {
			st, err := c.status(ctx, id)
			switch {
			case err != nil:
				return refused, err
			case st == "ACTIVE":
				c.active += time.Since(t0)
				return refused, nil
			case st != "BUILD":
				return refused, fmt.Errorf("server %s went %s", id, st)
			}
			time.Sleep(500 * time.Microsecond)
		}
	}
}

// BenchmarkFlood measures the create throughput of one well-behaved user
// (sequential creates, each POST then polled until ACTIVE, obeying any
// Retry-After) alone, then while 4 other users flood creates as fast as
// they can on 16 connections each (64 in all, ignoring 429s), in the same
// run on the same node: b.N creates each. The node runs in this process
// (so the flooders' own CPU competes with it too), with auth on, the fake
// driver without delays and unlimited quotas.
//
// Sub-benchmarks: rate_limit=off (the starting point);
// 20/s,max_delay=0s (requests_per_second = 20, burst = 40, refusing at
// once); 20/s (the same with the default max_delay, 1s: requests over the
// limit are held, refusals too). Reported: alone/s, flood/s, ratio_pct
// (flood/s over alone/s: the target is 50 or more), the well-behaved
// user's mean POST and POST-to-ACTIVE times in each phase, the flooders'
// accepted and refused creates per second during the flood, and good_429,
// the 429s the well-behaved user got in both phases. With a limit, the
// user alone is held to about its rate too, so the ratio says whether it
// still gets its rate under the flood. Run it with a fixed count, e.g.
// -benchtime 300x: each call starts its own node.
func BenchmarkFlood(b *testing.B) {
	const limit = "  rate_limit {\n    requests_per_second = 20\n    burst               = 40\n"
	for _, c := range []struct{ name, api string }{
		{"rate_limit=off", ""},
		{"rate_limit=20/s,max_delay=0s", limit + "    max_delay           = \"0s\"\n  }"},
		{"rate_limit=20/s", limit + "  }"},
	} {
		b.Run(c.name, func(b *testing.B) { flood(b, c.api) })
	}
}

func flood(b *testing.B, apiBlock string) {
	n := testnode.Start(b, testnode.Options{Extra: floodConfig(b), API: apiBlock})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	login := func(user string, hc *http.Client) *floodClient {
		return &floodClient{base: n.Base, token: n.Login(b, user, "pw", user).Token, hc: hc}
	}
	goodTransport := &http.Transport{MaxIdleConnsPerHost: 1}
	floodTransport := &http.Transport{MaxIdleConnsPerHost: floodUsers * floodConns}
	defer goodTransport.CloseIdleConnections()
	defer floodTransport.CloseIdleConnections()
	good := login("good", &http.Client{Transport: goodTransport})
	var flooders []*floodClient
	for i := 1; i <= floodUsers; i++ {
		flooders = append(flooders, login(fmt.Sprintf("flood%d", i), &http.Client{Transport: floodTransport}))
	}

	goodRefused := 0
	run := func(creates int) time.Duration {
		start := time.Now()
		for range creates {
			r, err := good.createActive(ctx)
			if err != nil {
				b.Fatal(err)
			}
			goodRefused += r
		}
		return time.Since(start)
	}
	run(20) // warm up: connections, policy instances
	goodRefused = 0

	b.ResetTimer()
	good.post, good.active = 0, 0
	alone := run(b.N)
	b.ReportMetric(float64(good.post.Milliseconds())/float64(b.N), "alone_post_ms")
	b.ReportMetric(float64(good.active.Milliseconds())/float64(b.N), "alone_active_ms")
	good.post, good.active = 0, 0

	var accepted, refused atomic.Int64
	floodErr := make(chan error, 1)
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, f := range flooders {
		for range floodConns {
			wg.Go(func() {
				for fctx.Err() == nil {
					code, _, _, err := f.create(fctx)
					switch {
					case err != nil && fctx.Err() == nil:
						select {
						case floodErr <- err:
						default:
						}
						return
					case code == http.StatusAccepted:
						accepted.Add(1)
					case code == http.StatusTooManyRequests:
						refused.Add(1)
					}
				}
			})
		}
	}
	// The flood is on once every flooder connection has had an answer
	// or two.
	for accepted.Load()+refused.Load() < 2*floodUsers*floodConns && len(floodErr) == 0 {
		time.Sleep(time.Millisecond)
	}
	a0, r0 := accepted.Load(), refused.Load()
	flooded := run(b.N)
	a1, r1 := accepted.Load(), refused.Load()
	stop()
	wg.Wait()
	b.StopTimer()
	select {
	case err := <-floodErr:
		b.Fatalf("a flooder: %v", err)
	default:
	}

	perSec := func(k int64, d time.Duration) float64 { return float64(k) / d.Seconds() }
	aloneRate, floodRate := perSec(int64(b.N), alone), perSec(int64(b.N), flooded)
	b.ReportMetric(aloneRate, "alone/s")
	b.ReportMetric(floodRate, "flood/s")
	b.ReportMetric(floodRate/aloneRate*100, "ratio_pct")
	b.ReportMetric(perSec(a1-a0, flooded), "flooders_202/s")
	b.ReportMetric(perSec(r1-r0, flooded), "flooders_429/s")
	b.ReportMetric(float64(goodRefused), "good_429")
	b.ReportMetric(float64(good.post.Milliseconds())/float64(b.N), "flood_post_ms")
	b.ReportMetric(float64(good.active.Milliseconds())/float64(b.N), "flood_active_ms")
}
