package embedded_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/lucid-project/lucid/core/store/embedded"
	"github.com/lucid-project/lucid/internal/testenv"
)

// dialEnv makes the test binary a helper that dials the unix socket it
// names (what another local user's etcdctl would do first) and, with
// putEnv set, writes a key through it. It prints "connected", "wrote" or
// the error, and exits.
const (
	dialEnv = "LUCID_TEST_DIAL_SOCKET"
	putEnv  = "LUCID_TEST_DIAL_PUT"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(dialEnv); path != "" {
		fmt.Println(writeThrough(path))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeThrough connects to the unix socket at path and, if it is an
// etcd, puts a key; it says what happened.
func writeThrough(path string) string {
	c, err := net.Dial("unix", path)
	if err != nil {
		return err.Error()
	}
	c.Close()
	if os.Getenv(putEnv) == "" {
		return "connected"
	}
	if err := put("unix://"+path, nil); err != nil {
		return err.Error()
	}
	return "wrote"
}

// put writes a key through a fresh client of endpoint. A refused client
// retries until its 2 s are up.
func put(endpoint string, tc *tls.Config) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tc, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, "/intruder", "was here")
	return err
}

func start(t *testing.T, cfg embedded.Config) *embedded.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg.FastElection = true
	m, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// By default the member serves clients only on a unix socket in its
// data directory, which is 0700; this user's tools reach it.
func TestSealedByDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	m := start(t, embedded.Config{DataDir: dir})
	sock := "unix://" + filepath.Join(dir, embedded.SocketName)
	if got := m.ClientURLs(); len(got) != 1 || got[0] != sock || m.ClientURL() != sock {
		t.Fatalf("client URLs %v (ClientURL %s), want only %s", got, m.ClientURL(), sock)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory mode %v, want 0700", fi.Mode().Perm())
	}
	if err := put(sock, nil); err != nil {
		t.Fatalf("the owner cannot write through the socket: %v", err)
	}
}

// A data directory that exists with a wider mode is narrowed to 0700
// before the socket is created in it.
func TestDataDirNarrowed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start(t, embedded.Config{DataDir: dir})
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory mode %v, want 0700", fi.Mode().Perm())
	}
}

// Another local user cannot reach the socket: run as nobody, the test
// binary cannot connect, while it can connect to an open socket beside
// it (so the refusal comes from the data directory's mode, not from
// anything else on the path).
func TestOtherUserCannotWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	root := t.TempDir()
	// Open the path down to root for everyone, as /var/lib would be.
	for d := root; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	helper := filepath.Join(root, "helper")
	copyFile(t, os.Args[0], helper, 0o755)

	open := filepath.Join(root, "open.sock")
	ln, err := net.Listen("unix", open)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(open, 0o777)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	dir := filepath.Join(root, "etcd")
	m := start(t, embedded.Config{DataDir: dir})
	sock := strings.TrimPrefix(m.ClientURL(), "unix://")

	asNobody := func(path string) string {
		cmd := exec.Command(helper)
		cmd.Env = []string{dialEnv + "=" + path}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// The control: nobody reaches an open socket on the same path.
	if got := asNobody(open); got != "connected" {
		t.Fatalf("nobody cannot even reach an open socket beside the data directory: %s", got)
	}
	if got := asNobody(sock); !strings.Contains(got, "permission denied") {
		t.Fatalf("another user dialing the member's socket: %q, want permission denied", got)
	}
	// The owner can, with the same helper.
	cmd := exec.Command(helper)
	cmd.Env = []string{dialEnv + "=" + sock, putEnv + "=1"}
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "wrote" {
		t.Fatalf("the owner's helper: %v %s", err, out)
	}
}

// The peer port takes only the certificate the member generated: a
// client without a certificate, or with one from another CA, gets no
// answer from it.
func TestPeerPortSealed(t *testing.T) {
	m := start(t, embedded.Config{DataDir: filepath.Join(t.TempDir(), "etcd")})
	other := testenv.NewPKI(t)
	cert, err := tls.LoadX509KeyPair(other.ClientCertFile, other.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{{"no certificate", nil}, {"another CA's certificate", []tls.Certificate{cert}}} {
		t.Run(tc.name, func(t *testing.T) {
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: tc.certs}}}
			resp, err := cl.Get("https://" + m.PeerAddr() + "/members")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("peer port answered %s: %s", resp.Status, b)
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("peer port refused with %v, want a certificate error", err)
			}
		})
	}
	// And plain HTTP is not spoken there at all.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + m.PeerAddr() + "/members")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the peer port: %s, want 400 (a TLS listener)", resp.Status)
		}
	}
}

// Exposed over https, the member requires a client certificate signed by
// the configured CA; the unix socket stays as well.
func TestExposedNeedsClientCert(t *testing.T) {
	pki := testenv.NewPKI(t)
	dir := filepath.Join(t.TempDir(), "etcd")
	m := start(t, embedded.Config{DataDir: dir, ClientURL: "https://127.0.0.1:0",
		TLS: &embedded.TLSFiles{CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile}})
	urls := m.ClientURLs()
	if len(urls) != 2 || urls[0] != "unix://"+filepath.Join(dir, embedded.SocketName) || !strings.HasPrefix(urls[1], "https://127.0.0.1:") {
		t.Fatalf("client URLs %v, want the socket and https://127.0.0.1:<port>", urls)
	}
	exposed := urls[1]
	stranger := testenv.NewPKI(t)
	strangerCert, err := tls.LoadX509KeyPair(stranger.ClientCertFile, stranger.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Why a client without a certificate fails: the server asks for one
	// and refuses the connection.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(exposed, "https://"), pki.ClientTLS(t, false))
	if err == nil {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("a TLS client without a certificate: %v, want the server's \"certificate required\"", err)
	}
	for _, tc := range []struct {
		name     string
		endpoint string
		tls      *tls.Config
		ok       bool
	}{
		{"client certificate", exposed, pki.ClientTLS(t, true), true},
		{"no client certificate", exposed, pki.ClientTLS(t, false), false},
		{"another CA's certificate", exposed, &tls.Config{RootCAs: pki.Pool(), Certificates: []tls.Certificate{strangerCert}}, false},
		{"plain http", "http://" + strings.TrimPrefix(exposed, "https://"), nil, false},
		{"the socket, as its owner", urls[0], nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := put(tc.endpoint, tc.tls)
			if tc.ok != (err == nil) {
				t.Fatalf("put through %s: %v, want ok=%v", tc.endpoint, err, tc.ok)
			}
		})
	}
}

// What Start refuses, before starting anything: every error names the
// offending setting.
func TestStartRefuses(t *testing.T) {
	pki := testenv.NewPKI(t)
	files := &embedded.TLSFiles{CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile}
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	for _, tc := range []struct {
		name string
		cfg  embedded.Config
		want []string
	}{
		{"plain http client url", embedded.Config{ClientURL: "http://127.0.0.1:2379", TLS: files}, []string{`"http://127.0.0.1:2379"`, "only https"}},
		{"unix client url", embedded.Config{ClientURL: "unix:///tmp/x.sock"}, []string{`"unix:///tmp/x.sock"`, "only https"}},
		{"https without TLS files", embedded.Config{ClientURL: "https://127.0.0.1:0"}, []string{`"https://127.0.0.1:0"`, "ca_file"}},
		{"https without a CA", embedded.Config{ClientURL: "https://127.0.0.1:0", TLS: &embedded.TLSFiles{CertFile: pki.CertFile, KeyFile: pki.KeyFile}}, []string{"ca_file"}},
		{"https without a port", embedded.Config{ClientURL: "https://127.0.0.1", TLS: files}, []string{"https://host:port"}},
		{"socket path too long", embedded.Config{DataDir: long}, []string{filepath.Join(long, embedded.SocketName), "at most 107"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.DataDir == "" {
				tc.cfg.DataDir = filepath.Join(t.TempDir(), "etcd")
			}
			m, err := embedded.Start(context.Background(), tc.cfg)
			if err == nil {
				m.Close()
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A data directory made before the member was sealed (plain http peer
// and client URLs on loopback ports) keeps its data.
func TestUnsealedDataDirKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	ec := embed.NewConfig()
	ec.Dir, ec.Name, ec.LogLevel = dir, "lucid", "error"
	ec.LogOutputs = []string{filepath.Join(t.TempDir(), "old.log")}
	pu, _ := url.Parse("http://127.0.0.1:0")
	cu, _ := url.Parse("http://127.0.0.1:0")
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.InitialCluster = "lucid=" + pu.String()
	ec.TickMs, ec.ElectionMs = 10, 100
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("old-style member not ready")
	}
	if err := put("http://"+e.Clients[0].Addr().String(), nil); err != nil {
		t.Fatal(err)
	}
	e.Close()

	m := start(t, embedded.Config{DataDir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := m.Client().Get(ctx, "/intruder")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "was here" {
		t.Fatalf("after sealing an old data directory: %v %v", resp, err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}
