package throughput_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/throughput"
)

// The command end to end, as an operator runs it (the real lucid binary,
// its real server and plugin), with tiny phases: every figure of the
// report is there and sane. Speed is not asserted: a short run on a
// shared machine says nothing about it.
func TestCommandEndToEnd(t *testing.T) {
	lucid := testenv.Binary(t, "github.com/lucid-project/lucid")
	dir := filepath.Join(t.TempDir(), "bench")
	cmd := exec.Command(lucid, "bench", "throughput", "--json",
		"--duration", "450ms", "--rounds", "3", "--clients", "3", "--per-client", "2", "--instances", "7",
		"--plugin", testenv.Binary(t, "./plugins/fake"),
		"--policy", testenv.Wasm(t, "./policies/transitions"),
		"--reconcile-policy", testenv.Wasm(t, "./policies/reconcile"),
		"--cache-dir", testenv.CacheDir(t), "--dir", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	var r throughput.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("the --json output does not decode: %v\n%s", err, stdout.String())
	}

	if r.Clients != 3 || r.PerClient != 2 || r.Instances != 7 || r.Duration != "450ms" {
		t.Errorf("report shape %+v, want the flags' values", r)
	}
	if r.Raw.Txns <= 0 || r.Raw.TxnPerSec <= 0 || r.Raw.CPUUsPerTx <= 0 || r.Raw.Fsyncs <= 0 || r.Raw.FsyncMs <= 0 ||
		math.Abs(r.Raw.TxnPerFsync-float64(r.Raw.Txns)/float64(r.Raw.Fsyncs)) > 1e-9 {
		t.Errorf("raw %+v: want transactions, a rate, their CPU and the member's fsyncs", r.Raw)
	}
	p := r.Path
	// Each stop or start is exactly two status changes, counted from
	// history: anything else is a lost or doubled change, or a miscount.
	// With Prefer: wait (the default) each action's POST is answered at
	// its end: no long-poll is needed.
	if p.Actions <= 0 || p.Changes != 2*p.Actions || p.ChangesPerSec <= 0 || r.Wait != throughput.WaitPrefer || r.Client != throughput.ClientWire || p.WaitsPerAction != 0 {
		t.Errorf("path %+v, wait %q: want actions of two history records each, each answered by its own POST", p, r.Wait)
	}
	// The raw and the path slices alternate, each round in the other
	// order, and each round's figures are its slices'.
	if len(r.Rounds) != 3 {
		t.Fatalf("rounds %+v, want the 3 asked for", r.Rounds)
	}
	var pathRate float64
	for i, rd := range r.Rounds {
		if rd.RawFirst != (i%2 == 0) || rd.RawTxnPerSec <= 0 || rd.PathChangesPerSec <= 0 || math.Abs(rd.Ratio-rd.PathChangesPerSec/rd.RawTxnPerSec) > 1e-9 {
			t.Errorf("round %d %+v: want raw first in odd rounds, rates, and their ratio", i+1, rd)
		}
		pathRate += rd.PathChangesPerSec / 3
	}
	// The run's rate is the slices' together, counted from history; the
	// rounds' rates count actions. They agree but for the slices' unequal
	// lengths (an action in flight when a slice's time is up ends it).
	if math.Abs(pathRate-p.ChangesPerSec) > 0.2*p.ChangesPerSec {
		t.Errorf("the rounds' path rates average %v, the run's %v", pathRate, p.ChangesPerSec)
	}
	if want := p.ChangesPerSec / r.Raw.TxnPerSec; p.Ratio <= 0 || math.Abs(p.Ratio-want) > 1e-9 {
		t.Errorf("ratio %v, want changes/s over raw txn/s = %v", p.Ratio, want)
	}
	// Each action writes its two changes, each a guarded transaction
	// (compared on state and transition; several instances' may share a
	// request and a raft proposal, so fewer proposals than changes, but
	// never more than one per change plus the few of the node's own
	// upkeep).
	if e := r.Etcd; e.Txn <= 0 || e.Put < 4 || e.Range < 4 || e.Proposals <= 0 || e.Proposals > 2.5 || e.Fsyncs <= 0 || e.FsyncMs <= 0 {
		t.Errorf("etcd per action %+v: want 4 or more puts and ranges (two guarded writes), some txns, proposals and fsyncs, at most one proposal per write", e)
	}
	c := r.CPU
	if c.ServeUs <= 0 || c.PluginUs < 0 || c.LoadUs <= 0 || c.ProfileSeconds <= 0 {
		t.Errorf("cpu %+v: want the server's and the load's CPU per change and a profile", c)
	}
	// The machine's split over the window: its CPUs (all the kernel
	// counts, which a container's affinity may narrow for Go), some work,
	// shares that add up.
	if m := c.Machine; m.CPUs < runtime.NumCPU() || m.Samples == 0 || m.Busy() <= 0 ||
		math.Abs(m.Busy()+m.Idle+m.IOWait+m.Stolen-1) > 1e-9 {
		t.Errorf("machine %+v: want at least the %d CPUs Go sees, some work, and shares summing to 1", m, runtime.NumCPU())
	}
	var sum, sumUs float64
	names := map[string]bool{}
	for _, comp := range c.Components {
		sum += comp.Share
		sumUs += comp.Us
		names[comp.Name] = true
	}
	if math.Abs(sum-1) > 1e-9 || math.Abs(sumUs-c.ServeUs) > 1e-6*c.ServeUs {
		t.Errorf("components %+v: shares sum to %v and µs to %v, want 1 and %v", c.Components, sum, sumUs, c.ServeUs)
	}
	for _, n := range []string{"policy (wazero, core/policy)", "etcd server+client (go.etcd.io)", "HTTP server (net/http)", "JSON (encoding/json)", "GC/runtime", "other"} {
		if !names[n] {
			t.Errorf("components lack %q: %+v", n, c.Components)
		}
	}
	cr := r.Create
	if cr.Creates != 7 || cr.ServerP50Ms <= 0 || cr.ServerP99Ms < cr.ServerP50Ms || cr.ClientP50Ms < cr.ServerP50Ms || cr.ClientP99Ms < cr.ClientP50Ms {
		t.Errorf("create %+v: want 7 creates, p99 ≥ p50 > 0, and a client that sees ACTIVE after the server wrote it", cr)
	}
	l := r.Listing
	if l.Instances != 7 || l.Keys < 7 || l.Rounds < 3 || l.APIMs <= 0 || l.APIDecodedMs < l.APIMs || l.RawMs <= 0 || l.Ratio <= 0 || l.APIUsPerInst <= 0 {
		t.Errorf("listing %+v: want 7 instances, their keys, three rounds or more, and times (decoded no shorter than not)", l)
	}
	if len(r.Targets) != 4 {
		t.Errorf("targets %+v, want the 4 of issue 13", r.Targets)
	}
	if !strings.Contains(r.Setup, "authentication OFF") || !strings.Contains(r.Attribution, "from the leaf") {
		t.Errorf("setup %q and attribution %q must say what was measured and how", r.Setup, r.Attribution)
	}

	// The same report for people.
	var out bytes.Buffer
	r.Print(&out)
	for _, want := range []string{"THROUGHPUT  3 clients", "1 raw etcd", "3 alternating rounds", "2 whole path", "× raw", "3 etcd per action", "4 CPU per status change", "the machine (", "5 create → ACTIVE", "6 listing 7 instances", "TARGET", "whole path / raw"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the printed report lacks %q:\n%s", want, out.String())
		}
	}
	t.Log(out.String())
}

// Bad input is refused before anything starts, naming what is wrong.
func TestBadConfig(t *testing.T) {
	plugin := testenv.Binary(t, "./plugins/fake")
	policy := testenv.Wasm(t, "./policies/transitions")
	ok := throughput.Config{Lucid: plugin, Plugin: plugin, Policy: policy, ReconcilePolicy: policy}
	for _, tc := range []struct {
		name string
		edit func(*throughput.Config)
		want string
	}{
		{"short duration", func(c *throughput.Config) { c.Duration = 50_000_000 }, "duration 50ms is below the minimum 500ms (100ms per slice, 5 rounds)"},
		{"short slices", func(c *throughput.Config) { c.Duration, c.Rounds = 1_000_000_000, 20 }, "duration 1s is below the minimum 2s (100ms per slice, 20 rounds)"},
		{"negative rounds", func(c *throughput.Config) { c.Rounds = -1 }, "-1 rounds: want at least 1"},
		{"negative clients", func(c *throughput.Config) { c.Clients = -1 }, "-1 clients: want at least 1"},
		{"negative per client", func(c *throughput.Config) { c.PerClient = -2 }, "-2 instances per client: want at least 1"},
		{"negative instances", func(c *throughput.Config) { c.Instances = -3 }, "-3 instances: want at least 1"},
		{"missing plugin", func(c *throughput.Config) { c.Plugin = "/no/such/plugin" }, "/no/such/plugin: no such file or directory (build it first: make build)"},
		{"no policy", func(c *throughput.Config) { c.Policy = "" }, "both policy modules are required"},
		{"unknown wait", func(c *throughput.Config) { c.Wait = "sometimes" }, `wait "sometimes": want prefer or long-poll`},
		{"unknown client", func(c *throughput.Config) { c.Client = "curl" }, `client "curl": want wire or go`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			cfg.Dir = t.TempDir()
			rep, err := throughput.Run(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || rep != nil {
				t.Fatalf("Run = %v, %v; want no report and an error containing %q", rep, err, tc.want)
			}
		})
	}
}
