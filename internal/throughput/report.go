package throughput

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Report is what a run measured, as printed (Print) or as JSON.
type Report struct {
	Clients     int    `json:"clients"`
	PerClient   int    `json:"instances_per_client"`
	Duration    string `json:"duration"`
	Instances   int    `json:"instances"`
	Wait        string `json:"wait"`   // how path clients wait for an action's end (Config.Wait)
	Client      string `json:"client"` // the load's HTTP client (Config.Client)
	Setup       string `json:"setup"`
	Attribution string `json:"cpu_attribution"`

	// Raw is the baseline, summed over the raw slices of Rounds, which
	// alternate with the path's (Path sums those).
	Raw     Raw     `json:"raw"`
	Rounds  []Round `json:"rounds"`
	Path    Path    `json:"path"`
	Etcd    EtcdOps `json:"etcd_per_action"`
	CPU     CPU     `json:"cpu"`
	Create  Create  `json:"create"`
	Listing Listing `json:"listing"`

	Targets []Target `json:"targets"`
}

// Round is one raw slice and the path slice beside it.
type Round struct {
	RawFirst          bool    `json:"raw_first"`
	RawTxnPerSec      float64 `json:"raw_txn_per_s"`
	PathChangesPerSec float64 `json:"path_status_changes_per_s"` // two per action
	Ratio             float64 `json:"ratio"`
}

// ratios is the lowest and the highest of the rounds' ratios.
func (r *Report) ratios() (lo, hi float64) {
	for i, rd := range r.Rounds {
		if i == 0 || rd.Ratio < lo {
			lo = rd.Ratio
		}
		if i == 0 || rd.Ratio > hi {
			hi = rd.Ratio
		}
	}
	return lo, hi
}

// Target is one of issue 13's goals and whether the run met it.
type Target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Met  bool    `json:"met"`
}

// setup says what the server and the load are, for the report's header.
const setup = "lucid serve in its own process: embedded etcd with fsync, fake driver with zero delay, " +
	"transitions validate policy on, reconciler on (30s sweep, as in config.hcl), authentication OFF " +
	"(loopback only: no token checks), no rate limit. The load is this process, over HTTP/1.1 keep-alive"

// clients says what the load's HTTP client is, for the setup line.
var clients = map[string]string{
	ClientWire: ", one connection per client, spoken by a minimal HTTP/1.1 client (as wrk does; --client go for Go's net/http).",
	ClientGo:   ", through Go's net/http client.",
}

func (r *Report) targets() {
	r.Setup = setup + clients[r.Client]
	r.Targets = nil
	add := func(name, want string, got float64, met bool) {
		r.Targets = append(r.Targets, Target{Name: name, Want: want, Got: got, Met: met})
	}
	if r.Path.Changes > 0 {
		add("whole path / raw", ">= 0.3", r.Path.Ratio, r.Path.Ratio >= 0.3)
	}
	if r.Create.Creates > 0 {
		add("create->ACTIVE p99 (server, ms)", "< 20", r.Create.ServerP99Ms, r.Create.ServerP99Ms < 20)
		add("create->ACTIVE p50 (server, ms)", "< 5", r.Create.ServerP50Ms, r.Create.ServerP50Ms < 5)
	}
	if r.Listing.Rounds > 0 {
		add("listing / raw range", "<= 2", r.Listing.Ratio, r.Listing.Ratio <= 2)
	}
}

// JSON writes the report as one JSON document.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "THROUGHPUT  %d clients, %s per phase\n", r.Clients, r.Duration)
	fmt.Fprintf(w, "setup: %s\n", r.Setup)
	fmt.Fprintf(w, "cpu attribution: %s\n\n", r.Attribution)

	fmt.Fprintf(w, "1 raw etcd (same config, in-process client, 2-key CAS txn, %d goroutines) and 2 the whole path, in %d alternating rounds\n", r.Clients, len(r.Rounds))
	fmt.Fprintf(w, "  round  raw txn/s  path changes/s  ratio\n")
	for i, rd := range r.Rounds {
		order := "raw, then path"
		if !rd.RawFirst {
			order = "path, then raw"
		}
		fmt.Fprintf(w, "  %5d  %9.0f  %14.0f  %.3f×  (%s)\n", i+1, rd.RawTxnPerSec, rd.PathChangesPerSec, rd.Ratio, order)
	}
	fmt.Fprintf(w, "\n1 raw etcd: %d txns in %.2fs: %.0f txn/s, %.1f µs CPU per txn (member and client); %d WAL fsyncs of %.2f ms mean, %.1f txns each\n\n",
		r.Raw.Txns, r.Raw.Seconds, r.Raw.TxnPerSec, r.Raw.CPUUsPerTx, r.Raw.Fsyncs, r.Raw.FsyncMs, r.Raw.TxnPerFsync)

	p := r.Path
	how := "sent with Prefer: wait and answered at its end (a 202 after 30s would be long-polled)"
	if r.Wait == WaitLongPoll {
		how = "answered 202, then waited for by long-polls: GET /v1/instances/{id}?wait=settled"
	}
	fmt.Fprintf(w, "2 whole path (stop/start over HTTP, %d clients × %d instances, each action %s)\n",
		r.Clients, r.PerClient, how)
	lo, hi := r.ratios()
	fmt.Fprintf(w, "  %d actions, %d status changes (from history) in %.2fs: %.0f changes/s = %.3f× raw (rounds %.3f–%.3f×)  (%.1f long-polls per action)\n\n",
		p.Actions, p.Changes, p.Seconds, p.ChangesPerSec, p.Ratio, lo, hi, p.WaitsPerAction)

	e := r.Etcd
	fmt.Fprintf(w, "3 etcd per action (2 status changes), from the server's /metrics (etcd counts a compare as a range, and any request of\n")
	fmt.Fprintf(w, "  more than one operation as a txn; raft proposals are the write requests)\n")
	fmt.Fprintf(w, "  txn %.2f  put %.2f  delete %.2f  range %.2f  raft proposals %.2f  wal fsyncs %.2f (%.2f ms mean)\n",
		e.Txn, e.Put, e.Delete, e.Range, e.Proposals, e.Fsyncs, e.FsyncMs)
	fmt.Fprintf(w, "  (4 ranges per action are the compares of its two guarded writes; a wait reads etcd only when the node's view does not show\n")
	fmt.Fprintf(w, "  the action in flight, and the reconciler settles the driver's power events from the view)\n")
	if e.Proposals > 0 {
		fmt.Fprintf(w, "  (%.1f writes per raft proposal: the writes that queue behind one in flight go to etcd as one request,\n", 2/e.Proposals)
		fmt.Fprintf(w, "  each its own nested transaction)\n")
	}
	fmt.Fprintln(w)

	c := r.CPU
	fmt.Fprintf(w, "4 CPU per status change: lucid serve %.0f µs, plugin %.0f µs, load generator %.0f µs (raw etcd: %.1f µs per txn)\n",
		c.ServeUs, c.PluginUs, c.LoadUs, r.Raw.CPUUsPerTx)
	fmt.Fprintf(w, "  lucid serve by component (profile of %.1fs CPU: warm-up and the path's slices):\n", c.ProfileSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, comp := range c.Components {
		fmt.Fprintf(tw, "    %s\t%5.1f%%\t%6.1f µs\n", comp.Name, 100*comp.Share, comp.Us)
	}
	tw.Flush()
	if m := c.Machine; m.Samples > 0 {
		fmt.Fprintf(w, "  the machine (%d CPUs, all processes): %.0f%% busy (user %.0f%%, system %.0f%%, interrupts %.0f%%), %.0f%% idle, %.0f%% idle waiting on I/O, %.0f%% stolen\n",
			m.CPUs, 100*m.Busy(), 100*m.User, 100*m.System, 100*m.IRQ, 100*m.Idle, 100*m.IOWait, 100*m.Stolen)
	}
	fmt.Fprintln(w)

	cr := r.Create
	fmt.Fprintf(w, "5 create → ACTIVE, %d creates by %d concurrent creators\n", cr.Creates, r.Clients)
	fmt.Fprintf(w, "  server (history ACTIVE − BUILD): p50 %.2f ms  p99 %.2f ms\n", cr.ServerP50Ms, cr.ServerP99Ms)
	answer := "the POST's answer (Prefer: wait) showing ACTIVE"
	if r.Wait == WaitLongPoll {
		answer = "the long-poll answering ACTIVE"
	}
	fmt.Fprintf(w, "  client (POST to %s): p50 %.2f ms  p99 %.2f ms\n\n", answer, cr.ClientP50Ms, cr.ClientP99Ms)

	l := r.Listing
	fmt.Fprintf(w, "6 listing %d instances: GET /v2.1/servers/detail (pages of %d) vs a raw ranged read of their %d keys over the member's socket, median of %d rounds\n",
		l.Instances, l.PageSizeLimit, l.Keys, l.Rounds)
	fmt.Fprintf(w, "  API %.2f ms (%.2f µs per instance), raw %.2f ms (%.2f µs per instance): %.2f× raw\n",
		l.APIMs, l.APIUsPerInst, l.RawMs, l.RawUsPerInst, l.Ratio)
	fmt.Fprintf(w, "  (request to last byte, as the raw read is request to decoded answer; with the load generator's JSON decoding of the answers: API %.2f ms, %.2f× raw)\n\n",
		l.APIDecodedMs, l.APIDecodedMs/l.RawMs)

	fmt.Fprintln(w, "TARGET")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets {
		met := "MISSED"
		if t.Met {
			met = "met"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3g\t%s\n", t.Name, t.Want, t.Got, met)
	}
	tw.Flush()
}
