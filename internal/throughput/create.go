package throughput

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/lucid-project/lucid/internal/soak"
)

// Create is phase 5: create → ACTIVE with concurrent creators.
type Create struct {
	Creates int `json:"creates"`
	// Server is ACTIVE's history time minus BUILD's: what the server
	// took, without the client's waiting.
	ServerP50Ms float64 `json:"server_p50_ms"`
	ServerP99Ms float64 `json:"server_p99_ms"`
	// Client is from sending the POST to the answer that shows the
	// instance ACTIVE: the POST's own with Prefer: wait (WaitPrefer), or
	// the long-poll's (GET ?wait=settled) after a 202 (WaitLongPoll).
	ClientP50Ms float64 `json:"client_p50_ms"`
	ClientP99Ms float64 `json:"client_p99_ms"`
}

// Listing is phase 6: one listing of every instance through the API
// beside a raw ranged read of their keys, each the median of Rounds.
//
// APIMs is from sending each page's request to having its whole answer,
// as RawMs is from sending the range to having etcd's answer decoded by
// its client; neither includes the load generator making sense of the
// values (the raw read leaves its 1,000 JSON values undecoded). The API
// side's JSON decoding of its answers, which it needs to count servers
// and follow next links, is APIDecodedMs: the time including it.
type Listing struct {
	Instances     int     `json:"instances"`
	Keys          int     `json:"keys"` // what the raw read returned
	Rounds        int     `json:"rounds"`
	APIMs         float64 `json:"api_ms"`
	APIDecodedMs  float64 `json:"api_decoded_ms"`
	RawMs         float64 `json:"raw_ms"`
	Ratio         float64 `json:"ratio"`
	APIUsPerInst  float64 `json:"api_us_per_instance"`
	RawUsPerInst  float64 `json:"raw_us_per_instance"`
	PageSizeLimit int     `json:"page_size"`
}

// pageSize is what one listing call asks for: the API's max_limit.
const pageSize = 1000

// createAndList runs phases 5 and 6 on a server of their own.
func createAndList(ctx context.Context, cfg Config, rep *Report) error {
	srv, err := startServer(ctx, cfg, filepath.Join(cfg.Dir, "create"))
	if err != nil {
		return err
	}
	err = driveCreateAndList(ctx, cfg, srv, rep)
	return errors.Join(err, srv.Stop())
}

func driveCreateAndList(ctx context.Context, cfg Config, srv *soak.Server, rep *Report) error {
	a := soak.NewAPI(srv.API(), cfg.Clients)
	load, closeLoad, err := senders(cfg.Client, srv.API(), a, cfg.Clients)
	if err != nil {
		return err
	}
	defer closeLoad()
	ids := make([]string, cfg.Instances)
	clientLat := make([]time.Duration, cfg.Instances)
	var next atomic.Int64
	if err := each(cfg.Clients, func(c int) error {
		var waits int64
		for {
			i := int(next.Add(1)) - 1
			if i >= cfg.Instances {
				return nil
			}
			id, took, err := create(ctx, load[c], fmt.Sprintf("create-%d", i), cfg.Wait == WaitLongPoll, &waits)
			if err != nil {
				return err
			}
			ids[i], clientLat[i] = id, took
		}
	}); err != nil {
		return err
	}
	// The server's own times, read after the load so as not to add to it.
	serverLat := make([]time.Duration, cfg.Instances)
	next.Store(0)
	if err := each(cfg.Clients, func(int) error {
		for {
			i := int(next.Add(1)) - 1
			if i >= cfg.Instances {
				return nil
			}
			h, err := history(ctx, a, ids[i])
			if err != nil {
				return err
			}
			if len(h) != 2 || h[0].To != "BUILD" || h[1].To != "ACTIVE" {
				return fmt.Errorf("throughput: %s's history is %+v, want BUILD then ACTIVE", ids[i], h)
			}
			serverLat[i] = h[1].At.Sub(h[0].At)
		}
	}); err != nil {
		return err
	}
	rep.Create = Create{
		Creates:     cfg.Instances,
		ServerP50Ms: ms(percentile(serverLat, 50)), ServerP99Ms: ms(percentile(serverLat, 99)),
		ClientP50Ms: ms(percentile(clientLat, 50)), ClientP99Ms: ms(percentile(clientLat, 99)),
	}
	return list(ctx, cfg, srv, a, rep)
}

// list times listing every instance through the API and a raw ranged
// read of their keys, alternated, for at most cfg.Duration and at least
// three rounds.
func list(ctx context.Context, cfg Config, srv *soak.Server, a *soak.API, rep *Report) error {
	raw, err := newRawRanger(srv.EtcdURL())
	if err != nil {
		return err
	}
	defer raw.Close()
	const prefix = "/lucid/instances/"
	var apiT, decodedT, rawT []time.Duration
	keys := 0
	start := time.Now()
	for len(apiT) < 3 || time.Since(start) < cfg.Duration {
		t0 := time.Now()
		n, took, err := listAPI(ctx, a)
		if err != nil {
			return err
		}
		t1 := time.Now()
		if keys, err = raw.rangePrefix(ctx, prefix); err != nil {
			return err
		}
		t2 := time.Now()
		if n != cfg.Instances {
			return fmt.Errorf("throughput: the API listed %d instances, want %d", n, cfg.Instances)
		}
		if keys < cfg.Instances {
			return fmt.Errorf("throughput: the raw read of %s returned %d keys for %d instances", prefix, keys, cfg.Instances)
		}
		apiT, decodedT, rawT = append(apiT, took), append(decodedT, t1.Sub(t0)), append(rawT, t2.Sub(t1))
	}
	am, rm := percentile(apiT, 50), percentile(rawT, 50)
	rep.Listing = Listing{
		Instances: cfg.Instances, Keys: keys, Rounds: len(apiT), PageSizeLimit: pageSize,
		APIMs: ms(am), APIDecodedMs: ms(percentile(decodedT, 50)), RawMs: ms(rm), Ratio: float64(am) / float64(rm),
		APIUsPerInst: us(am) / float64(cfg.Instances), RawUsPerInst: us(rm) / float64(cfg.Instances),
	}
	return nil
}

// listAPI lists every server with its details, page by page, and returns
// how many there were and the time the pages took from request to last
// byte: each answer is decoded (to count its servers and find the next
// page) after its time is taken.
func listAPI(ctx context.Context, a *soak.API) (int, time.Duration, error) {
	path := fmt.Sprintf("/v2.1/servers/detail?limit=%d", pageSize)
	n := 0
	var took time.Duration
	for path != "" {
		t0 := time.Now()
		req, err := http.NewRequestWithContext(ctx, "GET", a.Base+path, nil)
		if err != nil {
			return n, took, err
		}
		resp, err := a.HTTP.Do(req)
		if err != nil {
			return n, took, fmt.Errorf("throughput: GET %s: %w", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took += time.Since(t0)
		if err != nil {
			return n, took, fmt.Errorf("throughput: GET %s: %w", path, err)
		}
		if resp.StatusCode != http.StatusOK {
			return n, took, callError("GET", path, resp.StatusCode, b)
		}
		var out struct {
			Servers []struct {
				ID string `json:"id"`
			} `json:"servers"`
			Links []struct {
				Rel  string `json:"rel"`
				Href string `json:"href"`
			} `json:"servers_links"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return n, took, fmt.Errorf("throughput: GET %s: decode answer: %w", path, err)
		}
		n += len(out.Servers)
		path = ""
		for _, l := range out.Links {
			if l.Rel != "next" {
				continue
			}
			u, err := url.Parse(l.Href)
			if err != nil {
				return n, took, fmt.Errorf("throughput: next link %q: %w", l.Href, err)
			}
			path = u.RequestURI()
		}
	}
	return n, took, nil
}

// percentile is the nearest-rank p-th percentile of ds (0 when empty).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := (p*len(s) + 99) / 100 // ceil(p/100 × n)
	return s[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
