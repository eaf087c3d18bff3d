// Package throughput is `lucid bench throughput`: how fast the whole path
// (HTTP API → etcd → executor → driver plugin → etcd) makes status
// changes, against what the same etcd does raw, measured in one run, and
// what each change costs.
//
// The server is `lucid serve` in its own process (internal/soak's
// launcher) on a default-like config: embedded etcd with fsync, the fake
// driver without delays, the transitions validate policy, the reconciler
// as in the default config.hcl, and authentication off (the API is on
// loopback only), so that tokens do not dominate. This process is the
// load generator. The phases, in order:
//
//  1. raw: an embedded etcd member configured like the server's, in this
//     process, its own data directory; Clients goroutines make 2-key CAS
//     transactions (compare key A's mod revision, put A and B: the shape
//     of a status change) through the in-process client.
//
//  2. path: Clients clients, each owning its instances, stop and start
//     them through the HTTP API, each action waited for to its end.
//     Status changes are counted from each instance's history (its
//     newest sequence number before and after), not assumed.
//
//     Phases 1 and 2 run in Rounds alternating slices, each Duration /
//     Rounds long, after a warm-up of each: raw then path in odd rounds,
//     path then raw in even ones. The host's speed drifts by a fifth
//     from minute to minute on a shared machine; slices side by side
//     see the same host, so their ratio is the path's against etcd's
//     at the same time, where one run of each, minutes apart, gave a
//     ratio that moved with the drift.
//
//  3. etcd operations per action, from etcd's own counters on the
//     server's /metrics, before and after each of the path's slices.
//
//  4. CPU per status change: lucid serve's and its plugin's (/proc) over
//     the path's slices, and lucid serve's split by component from a CPU
//     profile (serve --cpu-profile, from ready to stop: warm-up, the
//     path's slices, and its idle time during the raw ones).
//
//  5. create → ACTIVE with Clients concurrent creators, Instances
//     creates on a second server: client-side (POST to the answer of
//     the long-poll that shows no transition) and
//     server-side (the ACTIVE history record's time minus BUILD's).
//
//  6. listing: GET /v2.1/servers/detail of those Instances beside a
//     ranged read of the same keys by an etcd client in this process
//     over the member's socket, alternated.
//
// Nothing here asserts speed: Run reports, and says which targets were
// met.
package throughput

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Config shapes a run. Zero fields take the defaults in brackets.
type Config struct {
	// Lucid, Plugin, Policy and ReconcilePolicy are the lucid
	// executable, the fake driver plugin, the transitions validate
	// policy and the reconcile policy module. Required.
	Lucid, Plugin, Policy, ReconcilePolicy string
	// Dir holds the raw member's data and each server's config, data,
	// log and profile. "" means a temporary directory, removed after a
	// run that worked.
	Dir string
	// CacheDir is the servers' wasm compile cache ["": the server's
	// default, <user cache dir>/lucid/wasm].
	CacheDir string
	// Duration is how long the raw phase and the path phase each run in
	// all, and bounds the listing phase [10s]. Each of their slices is at
	// least 100ms.
	Duration time.Duration
	// Rounds is how many slices of each the raw and the path phases are
	// cut into, alternating [5].
	Rounds int
	// Clients is how many clients (and raw goroutines, and creators)
	// work at once [16].
	Clients int
	// PerClient is how many instances each path client owns and takes
	// turns on [2].
	PerClient int
	// Instances is how many instances phase 5 creates and phase 6 lists
	// [1000].
	Instances int
	// Wait is how a path client learns that its action ended: WaitPrefer
	// (the action is sent with Prefer: wait and answered at its end) or
	// WaitLongPoll (202, then GET /v1/instances/{id}?wait=settled)
	// [WaitPrefer].
	Wait string
	// Client is the path clients' and creators' HTTP client: ClientWire
	// (a minimal HTTP/1.1 client, one connection each) or ClientGo (Go's
	// net/http) [ClientWire]. The measurement's own reads (history,
	// metrics, the listing) always use Go's.
	Client string
	// Out receives progress lines [io.Discard].
	Out io.Writer
}

// The ways a path client waits for its action's end (Config.Wait).
const (
	WaitPrefer   = "prefer"
	WaitLongPoll = "long-poll"
)

// minDuration keeps a phase long enough to count anything.
const minDuration = 100 * time.Millisecond

func (c *Config) defaults() error {
	if c.Lucid == "" || c.Plugin == "" || c.Policy == "" || c.ReconcilePolicy == "" {
		return errors.New("throughput: the lucid executable, the fake driver plugin and both policy modules are required")
	}
	for _, p := range []*string{&c.Lucid, &c.Plugin, &c.Policy, &c.ReconcilePolicy} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("throughput: %w (build it first: make build)", err)
		}
		*p = abs
	}
	switch {
	case c.Rounds == 0:
		c.Rounds = 5
	case c.Rounds < 0:
		return fmt.Errorf("throughput: %d rounds: want at least 1", c.Rounds)
	}
	switch {
	case c.Duration == 0:
		c.Duration = 10 * time.Second
	case c.Duration < minDuration*time.Duration(c.Rounds):
		return fmt.Errorf("throughput: duration %v is below the minimum %v (%v per slice, %d rounds)", c.Duration, minDuration*time.Duration(c.Rounds), minDuration, c.Rounds)
	}
	switch c.Wait {
	case "":
		c.Wait = WaitPrefer
	case WaitPrefer, WaitLongPoll:
	default:
		return fmt.Errorf("throughput: wait %q: want %s or %s", c.Wait, WaitPrefer, WaitLongPoll)
	}
	switch c.Client {
	case "":
		c.Client = ClientWire
	case ClientWire, ClientGo:
	default:
		return fmt.Errorf("throughput: client %q: want %s or %s", c.Client, ClientWire, ClientGo)
	}
	switch {
	case c.Clients == 0:
		c.Clients = 16
	case c.Clients < 0:
		return fmt.Errorf("throughput: %d clients: want at least 1", c.Clients)
	}
	switch {
	case c.PerClient == 0:
		c.PerClient = 2
	case c.PerClient < 0:
		return fmt.Errorf("throughput: %d instances per client: want at least 1", c.PerClient)
	}
	switch {
	case c.Instances == 0:
		c.Instances = 1000
	case c.Instances < 0:
		return fmt.Errorf("throughput: %d instances: want at least 1", c.Instances)
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return nil
}

// Run runs the phases and returns the report. The error is a setup or
// load failure (a call that should have passed and did not); the report
// is returned with what was measured up to then whenever the raw phase
// ran.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	keep := cfg.Dir != ""
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "lucid-throughput-")
		if err != nil {
			return nil, fmt.Errorf("throughput: %w", err)
		}
		cfg.Dir = d
	}
	rep := &Report{Clients: cfg.Clients, PerClient: cfg.PerClient, Duration: cfg.Duration.String(), Instances: cfg.Instances, Wait: cfg.Wait, Client: cfg.Client, Attribution: attributionRule}
	err := run(ctx, cfg, rep)
	if err == nil && !keep {
		os.RemoveAll(cfg.Dir)
	} else if err != nil {
		err = fmt.Errorf("%w (server configs, data and logs kept in %s)", err, cfg.Dir)
	}
	if rep.Raw.Txns == 0 {
		return nil, err
	}
	rep.targets()
	return rep, err
}

func run(ctx context.Context, cfg Config, rep *Report) error {
	slice := cfg.Duration / time.Duration(cfg.Rounds)
	warm := min(cfg.Duration/5, 2*time.Second)
	fmt.Fprintf(cfg.Out, "throughput: raw 2-key CAS txns (%d goroutines) and stop/start through the API (%d clients × %d instances), %d rounds of %v each, after %v of warm-up each\n",
		cfg.Clients, cfg.Clients, cfg.PerClient, cfg.Rounds, slice, warm)
	raw, err := startRaw(ctx, filepath.Join(cfg.Dir, "raw"), cfg.Clients)
	if err != nil {
		return err
	}
	closeRaw := sync.OnceFunc(raw.Close)
	defer closeRaw()
	if _, err := raw.run(ctx, warm); err != nil {
		return err
	}
	pr, err := startPath(ctx, cfg, warm)
	if err != nil {
		return err
	}
	err = rounds(ctx, cfg, slice, raw, pr, rep)
	closeRaw() // not to share the machine with the phases after
	if err == nil {
		err = pr.finish(ctx, rep)
	}
	if stopErr := pr.stop(); stopErr != nil {
		return errors.Join(err, stopErr)
	}
	if err != nil {
		return err
	}
	if err := pr.components(rep); err != nil {
		return err
	}

	fmt.Fprintf(cfg.Out, "throughput: %d creates by %d creators, then listing them\n", cfg.Instances, cfg.Clients)
	return createAndList(ctx, cfg, rep)
}

// rounds runs the raw and the path slices, alternating, and sums the raw
// ones into rep.Raw.
func rounds(ctx context.Context, cfg Config, slice time.Duration, raw *rawMember, pr *pathRun, rep *Report) error {
	for i := range cfg.Rounds {
		round := Round{RawFirst: i%2 == 0}
		doRaw := func() error {
			r, err := raw.run(ctx, slice)
			if err != nil {
				return err
			}
			rep.Raw.add(r)
			round.RawTxnPerSec = r.TxnPerSec
			return nil
		}
		doPath := func() error {
			n, took, err := pr.slice(ctx, slice)
			if err != nil {
				return err
			}
			// Each action is two status changes (the run's total is
			// counted from history, and the test checks the two agree).
			round.PathChangesPerSec = float64(2*n) / took.Seconds()
			return nil
		}
		steps := []func() error{doRaw, doPath}
		if !round.RawFirst {
			steps[0], steps[1] = doPath, doRaw
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		round.Ratio = round.PathChangesPerSec / round.RawTxnPerSec
		rep.Rounds = append(rep.Rounds, round)
		fmt.Fprintf(cfg.Out, "throughput: round %d: raw %.0f txn/s, path %.0f changes/s: %.3f×\n", i+1, round.RawTxnPerSec, round.PathChangesPerSec, round.Ratio)
	}
	return nil
}
