// Package embedded runs an etcd member inside the Lucid process: the
// single-machine default, so that `lucid serve` needs no other service.
// Only the composition root (core/node) imports it, so nothing else links
// the etcd server.
package embedded

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
)

// Config says how to run the member.
type Config struct {
	// DataDir holds the member's WAL and snapshots. Required.
	DataDir string
	// ClientURL exposes the member to other machines (a second lucid,
	// etcdctl elsewhere): "https://host:port", served with TLS and
	// requiring client certificates signed by TLS.CAFile. Any other
	// scheme is refused. "" (the default) exposes nothing: the member
	// listens only on the unix socket SocketName in DataDir, which is made
	// mode 0700, so only this user (and root) can reach it. Lucid itself
	// talks to the member in-process.
	ClientURL string
	// TLS is required with ClientURL, and used only for it.
	TLS *TLSFiles
	// FastElection shortens raft ticks (10 ms / 100 ms): a single member
	// elects itself in ~65 ms instead of ~0.7 s. Fine for one member; do
	// not use for a cluster across machines.
	FastElection bool
	// LogFile receives etcd's own log; default <DataDir>.log. It is
	// created (or narrowed to) mode 0600: etcd logs keys and request
	// details.
	LogFile string
	// QuotaBytes is etcd's backend quota (quota-backend-bytes): when the
	// database file reaches it, etcd raises its NOSPACE alarm and refuses
	// every write that adds data (store.ErrNoSpace) until space is
	// reclaimed and the alarm disarmed (store.Maintainer does both). Zero
	// means DefaultQuotaBytes; etcd itself refuses less than 0 and warns
	// above 8 GiB.
	QuotaBytes int64
	// CompactionRevisions turns on etcd's own revision compactor, keeping
	// this many revisions. etcd runs it every five minutes, a fixed
	// interval (see RATIONALE.md in core/store: at full write rate that
	// is far too seldom for a small quota, so store.Maintainer compacts
	// every second too); here it is the backstop for a member whose
	// owner runs no Maintainer. Zero means DefaultCompactionRevisions.
	CompactionRevisions int64
}

// DefaultQuotaBytes is the backend quota when Config.QuotaBytes is zero:
// etcd's own default, 2 GiB.
const DefaultQuotaBytes = 2 << 30

// DefaultCompactionRevisions is how many revisions the member keeps when
// Config.CompactionRevisions is zero: about three seconds of writes at
// the full rate measured on a 2-core machine (~3,400 status changes/s,
// one revision each), enough for a watcher that falls a little behind to
// resume without re-listing, and about 12 MiB of superseded values.
const DefaultCompactionRevisions = 10_000

// Member is a running in-process etcd member.
type Member struct {
	etcd *embed.Etcd
}

// Start starts an etcd member and waits until it serves.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("embedded etcd: data_dir is required")
	}
	ec := embed.NewConfig()
	ec.Name = "lucid"
	// etcd logs through zap in its own format; keep it out of Lucid's
	// output, in a file beside the data directory.
	ec.LogLevel = "warn"
	logFile := cfg.LogFile
	if logFile == "" {
		logFile = strings.TrimRight(cfg.DataDir, "/") + ".log"
	}
	ec.LogOutputs = []string{logFile}
	if cfg.QuotaBytes < 0 {
		return nil, fmt.Errorf("embedded etcd: quota %d bytes is negative", cfg.QuotaBytes)
	}
	if cfg.CompactionRevisions < 0 {
		return nil, fmt.Errorf("embedded etcd: compaction revisions %d is negative", cfg.CompactionRevisions)
	}
	ec.QuotaBackendBytes = cfg.QuotaBytes
	if ec.QuotaBackendBytes == 0 {
		ec.QuotaBackendBytes = DefaultQuotaBytes
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: data_dir: %w", err)
	}
	ec.Dir = dir
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	sock, err := socketURL(dir)
	if err != nil {
		return nil, err
	}
	ec.ListenClientUrls = []url.URL{sock}
	if cfg.ClientURL != "" {
		cu, err := exposedURL(cfg.ClientURL, cfg.TLS)
		if err != nil {
			return nil, err
		}
		ec.ListenClientUrls = append(ec.ListenClientUrls, cu)
		ec.ClientTLSInfo = transport.TLSInfo{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
			TrustedCAFile: cfg.TLS.CAFile, ClientCertAuth: true}
	}
	ec.AdvertiseClientUrls = ec.ListenClientUrls
	// A single member never dials its peers, so the peer listener can take
	// any free loopback port; the advertised URL only has to match the
	// initial cluster string. It takes only a certificate nobody else has.
	if ec.PeerTLSInfo, err = peerTLS(dir); err != nil {
		return nil, err
	}
	pu, _ := url.Parse("https://127.0.0.1:0")
	ec.ListenPeerUrls = []url.URL{*pu}
	ec.AdvertisePeerUrls = []url.URL{*pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()
	if cfg.FastElection {
		ec.TickMs = 10
		ec.ElectionMs = 100
	}
	revs := cfg.CompactionRevisions
	if revs == 0 {
		revs = DefaultCompactionRevisions
	}
	ec.AutoCompactionMode = embed.CompactorModeRevision
	ec.AutoCompactionRetention = strconv.FormatInt(revs, 10)
	if err := privateLog(logFile); err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return &Member{etcd: e}, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready: %w", ctx.Err())
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready after 60s")
	}
}

// privateLog creates the log file 0600 before etcd opens it (etcd would
// create it 0644, and it logs keys), or narrows an existing one to 0600.
func privateLog(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("embedded etcd: log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("embedded etcd: log file: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("embedded etcd: log file: %w", err)
	}
	return nil
}

// ClientURL is the address etcd clients of this user outside this
// process can use (etcdctl --endpoints, clientv3): the unix socket in the
// data directory, "unix:///abs/path".
func (m *Member) ClientURL() string {
	return m.etcd.Config().ListenClientUrls[0].String()
}

// ClientURLs are every URL the member serves clients on: ClientURL, then
// the exposed https URL (with its real port) if Config.ClientURL asked
// for one.
func (m *Member) ClientURLs() []string {
	urls := []string{m.ClientURL()}
	for _, l := range m.etcd.Clients {
		if a, ok := l.Addr().(*net.TCPAddr); ok {
			urls = append(urls, "https://"+a.String())
		}
	}
	return urls
}

// Client returns a client that talks to the member in-process, skipping
// gRPC over TCP: about twice the transaction rate of a loopback client.
// Closing the client does not stop the member.
func (m *Member) Client() *clientv3.Client {
	return v3client.New(m.etcd.Server)
}

// KV returns the member's KV service as a client, in-process, for
// store.Store.WithKV: the same service Client's KV calls, without
// clientv3's copying of every compare.
func (m *Member) KV() pb.KVClient {
	return adapter.KvServerToKvClient(v3rpc.NewQuotaKVServer(m.etcd.Server))
}

// Defragment rewrites the member's database file without its free pages,
// shrinking the file (which is what the quota counts) to the size in use.
// It blocks every read and write of the member while it runs (see
// RATIONALE.md in core/store for how long), and ctx cannot interrupt it
// once started. etcd's maintenance RPC does the same but cannot be called
// through the in-process client.
func (m *Member) Defragment(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.etcd.Server.Defragment(); err != nil {
		return fmt.Errorf("embedded etcd: defragment: %w", err)
	}
	return nil
}

// Close stops the member and waits for it.
func (m *Member) Close() {
	m.etcd.Close()
}
