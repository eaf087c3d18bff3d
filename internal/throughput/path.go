package throughput

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/soak"
)

// Path is phase 2: status changes through the whole path.
type Path struct {
	Actions        int64   `json:"actions"`
	Changes        int64   `json:"status_changes"` // from the instances' history
	Seconds        float64 `json:"seconds"`
	ChangesPerSec  float64 `json:"status_changes_per_s"`
	Ratio          float64 `json:"ratio_to_raw"`     // ChangesPerSec over the raw Txn/s
	WaitsPerAction float64 `json:"waits_per_action"` // long-polls (with Prefer: wait, only when an action outlived it)
}

// EtcdOps is phase 3: etcd's own counters over the path's slices, per action.
type EtcdOps struct {
	Txn       float64 `json:"txn"`
	Put       float64 `json:"put"`
	Delete    float64 `json:"delete"`
	Range     float64 `json:"range"`
	Proposals float64 `json:"raft_proposals"`
	Fsyncs    float64 `json:"wal_fsyncs"`
	// FsyncMs is the mean WAL fsync over the window (not per action).
	FsyncMs float64 `json:"wal_fsync_mean_ms"`
}

// CPU is phase 4: CPU time per status change over the path's slices.
type CPU struct {
	ServeUs  float64 `json:"serve_us_per_change"`
	PluginUs float64 `json:"plugin_us_per_change"`
	LoadUs   float64 `json:"load_us_per_change"` // this process, the load generator
	// Components split ServeUs by the profile's shares.
	Components []Component `json:"components"`
	// ProfileSeconds is the CPU the profile sampled (warm-up and phase
	// 2, and the server's stop).
	ProfileSeconds float64 `json:"profile_seconds"`
	// Machine is the whole machine over the path's slices.
	Machine Machine `json:"machine"`
}

// Component is one component's share of lucid serve's CPU.
type Component struct {
	Name  string  `json:"name"`
	Share float64 `json:"share"`
	Us    float64 `json:"us_per_change"`
}

// inst is an instance a path client owns.
type inst struct {
	id     string
	status string // ACTIVE or SHUTOFF
	seq    int64  // its newest history record's seq
}

// pathClient stops and starts its own instances, one action at a time.
type pathClient struct {
	api   sender    // the load's calls (Config.Client)
	ctl   *soak.API // the measurement's reads (history)
	insts []*inst
	n     int   // actions made
	waits int64 // long-polls sent
	// longPoll: wait for an action's end by long-polls only, not by
	// Prefer: wait on the action itself (Config.Wait).
	longPoll bool
}

// idle is what a long-poll's answer holds of an instance: what waiting
// needs, so the load generator's CPU goes to the load rather than to
// decoding fields it ignores (json.RawMessage: the transition is only
// checked for null).
type idle struct {
	Status     string          `json:"status"`
	Fault      *client.Fault   `json:"fault"`
	Transition json.RawMessage `json:"transition"`
}

// waitIdle long-polls the instance (GET /v1/instances/{id}?wait=settled,
// answered when no action is in flight, or after 30s with it still in
// flight, when it asks again) and returns it idle; waits counts the
// requests.
func waitIdle(ctx context.Context, a sender, id string, waits *int64) (idle, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		var out struct {
			Instance idle `json:"instance"`
		}
		*waits++
		path := "/v1/instances/" + id + "?wait=settled&timeout=30s"
		code, b, err := a.Send(ctx, "GET", path, "", nil)
		if err != nil {
			return idle{}, err
		}
		if code != http.StatusOK {
			return idle{}, callError("GET", path, code, b)
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return idle{}, fmt.Errorf("GET %s: decode answer: %w", path, err)
		}
		if t := out.Instance.Transition; len(t) == 0 || string(t) == "null" {
			return out.Instance, nil
		}
		if time.Now().After(deadline) {
			return out.Instance, fmt.Errorf("throughput: %s still %s after a minute", id, out.Instance.Status)
		}
	}
}

// create creates an instance and waits until it is ACTIVE; it returns
// its id and the time from the POST to seeing it ACTIVE.
func create(ctx context.Context, a sender, name string, longPoll bool, waits *int64) (string, time.Duration, error) {
	var out struct {
		Server struct {
			ID string `json:"id"`
			idle
		} `json:"server"`
	}
	var header http.Header
	if !longPoll {
		header = preferWait
	}
	t0 := time.Now()
	body := fmt.Sprintf(`{"server":{"name":%q,"flavorRef":"m1.tiny","imageRef":"cirros"}}`, name)
	code, b, err := a.Send(ctx, "POST", "/v2.1/servers", body, header)
	if err != nil {
		return "", 0, err
	}
	if code != http.StatusOK && code != http.StatusAccepted {
		return "", 0, callError("POST", "/v2.1/servers", code, b)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", 0, fmt.Errorf("POST /v2.1/servers: decode answer: %w", err)
	}
	in := out.Server.idle
	if code == http.StatusAccepted {
		in, err = waitIdle(ctx, a, out.Server.ID, waits)
	}
	took := time.Since(t0)
	if err == nil && (in.Status != "ACTIVE" || in.Fault != nil) {
		err = fmt.Errorf("throughput: create %s ended %s (fault %+v), want ACTIVE", out.Server.ID, in.Status, in.Fault)
	}
	return out.Server.ID, took, err
}

// act stops or starts the client's next instance and waits for the end.
func (c *pathClient) act(ctx context.Context) error {
	in := c.insts[c.n%len(c.insts)]
	c.n++
	body, want := `{"os-stop": null}`, "SHUTOFF"
	if in.status == "SHUTOFF" {
		body, want = `{"os-start": null}`, "ACTIVE"
	}
	got, err := c.send(ctx, in.id, body)
	if err != nil {
		return err
	}
	if got.Status != want || got.Fault != nil {
		return fmt.Errorf("throughput: %s %s ended %s (fault %+v), want %s", body, in.id, got.Status, got.Fault, want)
	}
	in.status = want
	return nil
}

// preferWait asks the server to answer an action when it has ended
// (RFC 7240; core/api answers 200 with the server, or the ordinary 202
// if it has not ended within the wait).
var preferWait = http.Header{"Prefer": {"wait=30"}}

// send posts an action to instance id and waits for its end: with
// Prefer: wait, or (WaitLongPoll, or when the server answered 202) by
// long-polling.
func (c *pathClient) send(ctx context.Context, id, body string) (idle, error) {
	path := "/v2.1/servers/" + id + "/action"
	var header http.Header
	if !c.longPoll {
		header = preferWait
	}
	code, b, err := c.api.Send(ctx, "POST", path, body, header)
	switch {
	case err != nil:
		return idle{}, err
	case code == http.StatusOK && !c.longPoll:
		var out struct {
			Server idle `json:"server"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return idle{}, fmt.Errorf("POST %s: decode answer: %w", path, err)
		}
		return out.Server, nil
	case code != http.StatusAccepted:
		return idle{}, callError("POST", path, code, b)
	}
	return waitIdle(ctx, c.api, id, &c.waits)
}

// loop acts until the deadline; it returns how many actions it made.
func (c *pathClient) loop(ctx context.Context, until time.Time) (int, error) {
	n := 0
	for time.Now().Before(until) {
		if err := c.act(ctx); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// readSeqs reads each instance's newest history seq.
func (c *pathClient) readSeqs(ctx context.Context) error {
	for _, in := range c.insts {
		s, err := lastSeq(ctx, c.ctl, in.id)
		if err != nil {
			return err
		}
		in.seq = s
	}
	return nil
}

func history(ctx context.Context, a *soak.API, id string) ([]client.HistoryRecord, error) {
	var out struct {
		History []client.HistoryRecord `json:"history"`
	}
	err := a.Do(ctx, "GET", "/v1/instances/"+id+"/history", "", http.StatusOK, &out)
	return out.History, err
}

func lastSeq(ctx context.Context, a *soak.API, id string) (int64, error) {
	h, err := history(ctx, a, id)
	if err != nil {
		return 0, err
	}
	if len(h) == 0 {
		return 0, fmt.Errorf("throughput: %s has no history", id)
	}
	return h[len(h)-1].Seq, nil
}

// each runs fn on every index at once and joins the errors.
func each(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pathRun is the path's server and clients, ready for slices: phases 2
// to 4 are summed over the slices, so that what the server does between
// them (idle while the raw member works) counts nowhere.
type pathRun struct {
	cfg       Config
	srv       *soak.Server
	profile   string
	a         *soak.API
	cs        []*pathClient
	closeLoad func()
	pluginPID int

	seq0   map[*inst]int64
	waits0 int64
	// Summed over the slices:
	actions             int64
	took                time.Duration
	serve, plugin, self time.Duration
	ticks               cpuTicks
	cpus                int
	ticksOK             bool
	metrics             map[string]float64
}

// startPath starts the path's server, profiled, creates the clients'
// instances and warms the path up (connections, policy instances,
// caches) for warm.
func startPath(ctx context.Context, cfg Config, warm time.Duration) (*pathRun, error) {
	dir := filepath.Join(cfg.Dir, "path")
	pr := &pathRun{cfg: cfg, profile: filepath.Join(dir, "cpu.pprof"), ticksOK: true, metrics: map[string]float64{}}
	srv, err := startServer(ctx, cfg, dir, "--cpu-profile", pr.profile)
	if err != nil {
		return nil, err
	}
	pr.srv = srv
	if err := pr.prepare(ctx, warm); err != nil {
		return nil, errors.Join(err, pr.stop())
	}
	return pr, nil
}

func (pr *pathRun) prepare(ctx context.Context, warm time.Duration) error {
	cfg := pr.cfg
	pr.a = soak.NewAPI(pr.srv.API(), cfg.Clients)
	load, closeLoad, err := senders(cfg.Client, pr.srv.API(), pr.a, cfg.Clients)
	if err != nil {
		return err
	}
	pr.closeLoad = closeLoad
	pr.cs = make([]*pathClient, cfg.Clients)
	if err := each(cfg.Clients, func(i int) error {
		c := &pathClient{api: load[i], ctl: pr.a, longPoll: cfg.Wait == WaitLongPoll}
		pr.cs[i] = c
		var waits int64
		for j := range cfg.PerClient {
			id, _, err := create(ctx, load[i], fmt.Sprintf("path-%d-%d", i, j), c.longPoll, &waits)
			if err != nil {
				return err
			}
			c.insts = append(c.insts, &inst{id: id, status: "ACTIVE"})
		}
		return nil
	}); err != nil {
		return err
	}
	until := time.Now().Add(warm)
	if err := each(cfg.Clients, func(i int) error { _, err := pr.cs[i].loop(ctx, until); return err }); err != nil {
		return err
	}
	if err := each(cfg.Clients, func(i int) error { return pr.cs[i].readSeqs(ctx) }); err != nil {
		return err
	}
	pr.seq0 = map[*inst]int64{}
	for _, c := range pr.cs {
		pr.waits0 += c.waits
		for _, in := range c.insts {
			pr.seq0[in] = in.seq
		}
	}
	pr.pluginPID = pr.srv.PluginPID()
	return nil
}

// slice has the clients stop and start their instances for d, and adds
// what it cost to the run's sums. It returns the actions made and how
// long they took.
func (pr *pathRun) slice(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	cfg := pr.cfg
	m0, err := metrics(ctx, pr.a)
	if err != nil {
		return 0, 0, err
	}
	serve0, plugin0, self0 := soak.CPU(pr.srv.PID()), soak.CPU(pr.pluginPID), selfCPU()
	ticks0, cpus, ticksErr := readCPUTicks()
	start := time.Now()
	actions := make([]int, cfg.Clients)
	loadErr := each(cfg.Clients, func(i int) error {
		n, err := pr.cs[i].loop(ctx, start.Add(d))
		actions[i] = n
		return err
	})
	took := time.Since(start)
	pr.took += took
	serve1, plugin1, self1 := soak.CPU(pr.srv.PID()), soak.CPU(pr.pluginPID), selfCPU()
	ticks1, _, err := readCPUTicks()
	if err != nil || ticksErr != nil {
		pr.ticksOK = false
	} else {
		pr.cpus = cpus
		pr.ticks.add(ticks1.since(ticks0))
	}
	if loadErr != nil {
		return 0, 0, loadErr
	}
	if p := pr.srv.PluginPID(); p != pr.pluginPID {
		return 0, 0, fmt.Errorf("throughput: the driver plugin restarted during the run (pid %d, then %d)", pr.pluginPID, p)
	}
	m1, err := metrics(ctx, pr.a)
	if err != nil {
		return 0, 0, err
	}
	for name, v := range m1 {
		pr.metrics[name] += v - m0[name]
	}
	pr.serve += serve1 - serve0
	pr.plugin += plugin1 - plugin0
	pr.self += self1 - self0
	var n int64
	for _, a := range actions {
		n += int64(a)
	}
	pr.actions += n
	return n, took, nil
}

// finish counts the slices' status changes from the instances' history
// and fills in phases 2 to 4 of rep, the ratio to rep.Raw included.
func (pr *pathRun) finish(ctx context.Context, rep *Report) error {
	if err := each(pr.cfg.Clients, func(i int) error { return pr.cs[i].readSeqs(ctx) }); err != nil {
		return err
	}
	p := &rep.Path
	p.Actions = pr.actions
	var waits int64
	for _, c := range pr.cs {
		waits += c.waits
		for _, in := range c.insts {
			p.Changes += in.seq - pr.seq0[in]
		}
	}
	waits -= pr.waits0
	if p.Actions == 0 || p.Changes == 0 {
		return fmt.Errorf("throughput: no action completed in %v", pr.cfg.Duration)
	}
	p.Seconds = pr.took.Seconds()
	p.ChangesPerSec = float64(p.Changes) / p.Seconds
	p.Ratio = p.ChangesPerSec / rep.Raw.TxnPerSec
	p.WaitsPerAction = float64(waits) / float64(p.Actions)
	if pr.ticksOK {
		rep.CPU.Machine = machineBetween(cpuTicks{}, pr.ticks, pr.cpus)
	}

	m := pr.metrics
	per := func(name string) float64 { return m[name] / float64(p.Actions) }
	rep.Etcd = EtcdOps{
		Txn: per("etcd_mvcc_txn_total"), Put: per("etcd_mvcc_put_total"), Delete: per("etcd_mvcc_delete_total"),
		Range:     per("etcd_mvcc_range_total"),
		Proposals: per("etcd_server_proposals_committed_total"), Fsyncs: per("etcd_disk_wal_fsync_duration_seconds_count"),
	}
	if n := m["etcd_disk_wal_fsync_duration_seconds_count"]; n > 0 {
		rep.Etcd.FsyncMs = 1000 * m["etcd_disk_wal_fsync_duration_seconds_sum"] / n
	}
	ch := float64(p.Changes)
	rep.CPU.ServeUs = us(pr.serve) / ch
	rep.CPU.PluginUs = us(pr.plugin) / ch
	rep.CPU.LoadUs = us(pr.self) / ch
	return nil
}

// stop stops the server, which writes its profile.
func (pr *pathRun) stop() error {
	if pr.closeLoad != nil {
		pr.closeLoad()
	}
	return pr.srv.Stop()
}

// components splits rep's serve CPU by the profile's shares.
func (pr *pathRun) components(rep *Report) error {
	shares, sampled, err := componentShares(pr.profile)
	if err != nil {
		return err
	}
	rep.CPU.ProfileSeconds = sampled.Seconds()
	for _, s := range shares {
		rep.CPU.Components = append(rep.CPU.Components, Component{Name: s.name, Share: s.share, Us: s.share * rep.CPU.ServeUs})
	}
	return nil
}
