package throughput

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lucid-project/lucid/core/store/embedded"
)

// Raw is phase 1: what etcd alone does, in one slice or over several.
type Raw struct {
	Txns       int64   `json:"txns"`
	Seconds    float64 `json:"seconds"`
	TxnPerSec  float64 `json:"txn_per_s"`
	CPUUsPerTx float64 `json:"cpu_us_per_txn"` // this process's CPU (the member and its clients) per txn
	// The member's WAL fsyncs (etcd's histogram, in this process's
	// default Prometheus registry): how many, their mean, and txns per
	// fsync. With fsync on, a member commits what arrived during the last
	// fsync in the next one, so par / FsyncMs bounds TxnPerSec.
	Fsyncs      int64   `json:"wal_fsyncs"`
	FsyncMs     float64 `json:"wal_fsync_mean_ms"`
	TxnPerFsync float64 `json:"txn_per_fsync"`

	cpu      time.Duration // this process's CPU over the slices
	fsyncSum float64       // seconds the fsyncs took
}

// rawValue sizes the raw phase's values like a status change's: an
// instance's state record (about 600 bytes of JSON) and a history record
// (about 250).
var (
	rawState   = strings.Repeat("s", 600)
	rawHistory = strings.Repeat("h", 250)
)

// rawMember is an embedded member configured as lucid serve's (fast
// election for one member, the default quota and compaction) in this
// process, on which goroutines make 2-key CAS transactions through the
// in-process client: each compares its key A's mod revision with the one
// its last transaction wrote, and puts A and B. A transaction that does
// not succeed is an error: nothing else writes those keys. The member
// stays up between slices, so that each slice after the warm-up finds it
// as warm as the path's server.
type rawMember struct {
	m    *embedded.Member
	cli  *clientv3.Client
	revs []int64 // each goroutine's key A's mod revision: 0 while it does not exist
}

func startRaw(ctx context.Context, dir string, par int) (*rawMember, error) {
	m, err := embedded.Start(ctx, embedded.Config{DataDir: dir, FastElection: true, CompactionRevisions: embedded.DefaultCompactionRevisions})
	if err != nil {
		return nil, fmt.Errorf("throughput: raw etcd: %w", err)
	}
	return &rawMember{m: m, cli: m.Client(), revs: make([]int64, par)}, nil
}

func (r *rawMember) Close() {
	r.cli.Close()
	r.m.Close()
}

// run has the member's goroutines make transactions for d, and returns
// what they did.
func (r *rawMember) run(ctx context.Context, d time.Duration) (Raw, error) {
	par := len(r.revs)
	counts := make([]int64, par)
	errs := make([]error, par)
	fs0, fsum0 := walFsyncs()
	cpu0 := selfCPU()
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := fmt.Sprintf("/raw/%d/state", i), fmt.Sprintf("/raw/%d/history", i)
			for time.Now().Before(end) {
				resp, err := r.cli.Txn(ctx).
					If(clientv3.Compare(clientv3.ModRevision(a), "=", r.revs[i])).
					Then(clientv3.OpPut(a, rawState), clientv3.OpPut(b, rawHistory)).
					Commit()
				if err != nil {
					errs[i] = fmt.Errorf("throughput: raw txn on %s: %w", a, err)
					return
				}
				if !resp.Succeeded {
					errs[i] = fmt.Errorf("throughput: raw txn on %s: compare failed at revision %d", a, r.revs[i])
					return
				}
				r.revs[i] = resp.Header.Revision
				counts[i]++
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	cpu := selfCPU() - cpu0
	fs1, fsum1 := walFsyncs()
	if err := errors.Join(errs...); err != nil {
		return Raw{}, err
	}
	var n int64
	for _, c := range counts {
		n += c
	}
	if n == 0 {
		return Raw{}, errors.New("throughput: no raw transaction completed")
	}
	raw := Raw{Txns: n, Seconds: took.Seconds(), cpu: cpu, Fsyncs: int64(fs1 - fs0), fsyncSum: fsum1 - fsum0}
	raw.derive()
	return raw, nil
}

// add adds slice o's counts to r's.
func (r *Raw) add(o Raw) {
	r.Txns += o.Txns
	r.Seconds += o.Seconds
	r.cpu += o.cpu
	r.Fsyncs += o.Fsyncs
	r.fsyncSum += o.fsyncSum
	r.derive()
}

// derive computes the rates from the counts.
func (r *Raw) derive() {
	if r.Txns == 0 || r.Seconds == 0 {
		return
	}
	r.TxnPerSec = float64(r.Txns) / r.Seconds
	r.CPUUsPerTx = us(r.cpu) / float64(r.Txns)
	if r.Fsyncs > 0 {
		r.FsyncMs = 1000 * r.fsyncSum / float64(r.Fsyncs)
		r.TxnPerFsync = float64(r.Txns) / float64(r.Fsyncs)
	}
}

// walFsyncs reads the count and sum (seconds) of etcd's WAL fsync
// histogram from this process's default Prometheus registry, where an
// embedded member registers its metrics; zeros when it is not there.
func walFsyncs() (count uint64, sum float64) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "etcd_disk_wal_fsync_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			count += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return count, sum
}

// rawRanger reads a prefix of the server's etcd the way a client of
// another process can: over the member's unix socket.
type rawRanger struct{ cli *clientv3.Client }

func newRawRanger(url string) (*rawRanger, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("throughput: reach the server's etcd at %s: %w", url, err)
	}
	return &rawRanger{cli: cli}, nil
}

// rangePrefix reads every key under prefix with its value and returns
// how many there were.
func (r *rawRanger) rangePrefix(ctx context.Context, prefix string) (int, error) {
	resp, err := r.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("throughput: raw range %s: %w", prefix, err)
	}
	return len(resp.Kvs), nil
}

func (r *rawRanger) Close() error { return r.cli.Close() }

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
