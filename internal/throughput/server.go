package throughput

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/lucid-project/lucid/internal/soak"
)

// serverConfig is the default config.hcl's shape with what a benchmark
// must change: ports chosen by the server, the fake driver without its
// boot delay, no quota, no rate limit (the default's 20 changing
// requests/s per user would throttle a load that is one user),
// authentication off (loopback only). The validate and reconcile
// policies and the reconciler are the default config's.
func serverConfig(cfg Config) string {
	cache := ""
	if cfg.CacheDir != "" {
		cache = fmt.Sprintf("cache_dir = %q\n", cfg.CacheDir)
	}
	return fmt.Sprintf(`# Written by lucid bench throughput: the default config.hcl, with the
# fake driver's boot delay at zero, no quota, no rate limit and
# authentication off (the API listens on loopback only).
node = "bench"
%s
store {
  embedded { data_dir = "data/etcd" }
  prefix = "/lucid"
}

api { listen = "127.0.0.1:0" }

auth { enabled = false }

flavor "m1.tiny" {
  vcpus   = 1
  ram_mb  = 512
  disk_gb = 1
}

image "cirros" { source = "fake://cirros" }

driver "fake" {
  plugin = %q
}

policy "validate" {
  module   = %q
  settings = {}
}

policy "reconcile" {
  module   = %q
  settings = {
    on_power_mismatch = "correct"
    on_error          = "leave"
    on_vanished       = "correct"
    on_unmanaged      = "flag"
    on_stuck          = "correct"
    grace             = "0s"
  }
}

reconciler {
  enabled  = true
  interval = "30s"
}
`, cache, cfg.Plugin, cfg.Policy, cfg.ReconcilePolicy)
}

func startServer(ctx context.Context, cfg Config, dir string, args ...string) (*soak.Server, error) {
	return soak.StartServer(ctx, soak.ServerConfig{Lucid: cfg.Lucid, Plugin: cfg.Plugin, Dir: dir, Config: serverConfig(cfg), Args: args})
}

// etcdCounters are the etcd counters read from /metrics.
var etcdCounters = []string{
	"etcd_mvcc_txn_total",    // write transactions (multi-operation)
	"etcd_mvcc_put_total",    // keys written, in transactions or not
	"etcd_mvcc_delete_total", // deletes
	"etcd_mvcc_range_total",  // ranged reads, including those inside transactions
	"etcd_server_proposals_committed_total",
	"etcd_disk_wal_fsync_duration_seconds_count", // WAL fsyncs
	"etcd_disk_wal_fsync_duration_seconds_sum",   // and the time they took
}

// metrics reads the server's /metrics and sums each of etcdCounters over
// its series. A counter the server does not serve is an error: the
// report would be silently wrong.
func metrics(ctx context.Context, a *soak.API) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.Base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("throughput: GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("throughput: GET /metrics: %s", resp.Status)
	}
	want := map[string]bool{}
	for _, n := range etcdCounters {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			_, rest, ok = strings.Cut(line[strings.LastIndexByte(line, '}')+1:], " ")
		}
		f := strings.Fields(rest)
		if !ok || !want[name] || len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("throughput: /metrics: %s: %w", line, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("throughput: GET /metrics: %w", err)
	}
	for _, n := range etcdCounters {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("throughput: /metrics has no %s", n)
		}
	}
	return out, nil
}
