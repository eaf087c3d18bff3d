package node_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/node"
	"github.com/lucid-project/lucid/core/store/embedded"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// With api { tls {...} } the API serves HTTPS only: a client trusting the
// CA is served (and the links it gets say https), one that does not trust
// it and a plain HTTP request are not.
func TestHTTPSAPI(t *testing.T) {
	pki := testenv.NewPKI(t)
	// Without auth: the test node's client would log in over HTTPS
	// without the test's CA.
	n := testnode.Start(t, testnode.Options{API: fmt.Sprintf("  tls {\n    cert_file = %q\n    key_file  = %q\n  }", pki.CertFile, pki.KeyFile),
		Extra: "auth { enabled = false }"})
	if want := "https://" + n.Addr; n.URL != want {
		t.Fatalf("node URL %q, want %q", n.URL, want)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(t, false)}}
	resp, err := hc.Get(n.URL + "/v2.1/")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Version struct {
			Links []struct{ Href string }
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.TLS == nil || resp.Proto != "HTTP/1.1" {
		t.Fatalf("GET /v2.1/ over HTTPS: %s %s %v", resp.Status, resp.Proto, err)
	}
	if len(body.Version.Links) == 0 || !strings.HasPrefix(body.Version.Links[0].Href, n.URL+"/v2.1/") {
		t.Fatalf("links %+v, want %s/v2.1/", body.Version.Links, n.URL)
	}

	// A client without the CA refuses the server's certificate.
	if _, err := (&http.Client{Timeout: 10 * time.Second}).Get(n.URL + "/v2.1/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA: %v, want a certificate error", err)
	}
	// Plain HTTP gets Go's 400 for HTTP spoken to an HTTPS port.
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + n.Addr + "/v2.1/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "HTTPS") {
		t.Fatalf("plain HTTP to the HTTPS API: %s %q", resp.Status, b)
	}
}

// An etcd that demands client certificates (here an embedded member
// exposed over https, as a cluster would be): a node whose store block
// names the CA and a client certificate runs instances on it.
func TestStoreTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := embedded.Start(ctx, embedded.Config{DataDir: filepath.Join(t.TempDir(), "etcd"), FastElection: true,
		ClientURL: "https://127.0.0.1:0", TLS: &embedded.TLSFiles{CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	n := testnode.Start(t, testnode.Options{Store: fmt.Sprintf("endpoints = [%q]\n  tls {\n    ca_file   = %q\n    cert_file = %q\n    key_file  = %q\n  }",
		m.ClientURLs()[1], pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)})
	createActive(t, n.Client, "over-tls")
}

// An embedded member exposed with client_url serves a second node that
// presents a client certificate: the second node sees the first's
// instances. (Auth is off: it is not what this tests, and only the first
// node would write the admin's clouds.yaml.)
func TestExposedEmbeddedSecondNode(t *testing.T) {
	pki := testenv.NewPKI(t)
	url := "https://" + freeAddr(t)
	one := testnode.Start(t, testnode.Options{Name: "one", Store: fmt.Sprintf(
		"embedded {\n    data_dir   = %q\n    client_url = %q\n  }\n  tls {\n    ca_file   = %q\n    cert_file = %q\n    key_file  = %q\n  }",
		filepath.Join(t.TempDir(), "etcd"), url, pki.CAFile, pki.CertFile, pki.KeyFile), Extra: "auth { enabled = false }"})
	two := testnode.Start(t, testnode.Options{Name: "two", Store: fmt.Sprintf(
		"endpoints = [%q]\n  tls {\n    ca_file   = %q\n    cert_file = %q\n    key_file  = %q\n  }",
		url, pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile), Extra: "auth { enabled = false }"})
	id := createActive(t, one.Client, "shared")
	in, err := two.Client.Instance(context.Background(), id)
	if err != nil || in.Name != "shared" || in.Status != "ACTIVE" {
		t.Fatalf("the second node sees %+v, %v; want the first's ACTIVE instance", in, err)
	}
}

// lucid config validate (node.Check) reports a listen address that is in
// use, at its line.
func TestCheckBusyListen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	path := testnode.Config(t, testnode.Options{})
	src, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(src), `listen = "127.0.0.1:0"`, fmt.Sprintf("listen = %q", busy.Addr().String()), 1)), 0o644)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = node.Check(context.Background(), cfg, nil)
	e, ok := config.AsError(err)
	if !ok || len(e.Diags) != 1 || e.Diags[0].Summary != "Cannot listen" || !strings.Contains(e.Diags[0].Detail, busy.Addr().String()+" is in use") ||
		!strings.Contains(err.Error(), fmt.Sprintf("listen = %q", busy.Addr().String())) {
		t.Fatalf("Check with a busy listen address: %v", err)
	}
}

// A plugin binary replaced under a running node, then restarted (here:
// killed), fails its checksum: the next action's instance ends in ERROR
// with a fault that says "checksum mismatch", not just "restarting".
func TestTamperedPluginFault(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "lucid-driver-fake")
	good, err := os.ReadFile(testenv.Binary(t, "./plugins/fake"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plugin, good, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	path := testnode.Config(t, testnode.Options{Dir: dir, Extra: "executor { step_timeout = \"3s\" }"})
	src, _ := os.ReadFile(path)
	src = []byte(strings.Replace(string(src), fmt.Sprintf("plugin = %q", testenv.Binary(t, "./plugins/fake")),
		fmt.Sprintf("plugin   = %q\n  checksum = \"sha256:%s\"", plugin, hex.EncodeToString(sum[:])), 1))
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	n := testnode.StartConfig(t, path)
	createActive(t, n.Client, "before")

	// Replace the file (a new inode), then kill the running plugin so
	// that the host must start the new one.
	pids := testenv.ChildPIDs(t, plugin)
	if len(pids) != 1 {
		t.Fatalf("plugin processes %v, want one", pids)
	}
	if err := os.WriteFile(plugin+".new", append(good, "tampered"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(plugin+".new", plugin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, r, err := n.Client.Create(ctx, client.CreateRequest{Name: "after", FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := n.Client.Wait(ctx, id, r.RequestID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != "ERROR" || in.Fault == nil || !strings.Contains(in.Fault.Message, "checksum mismatch") || !strings.Contains(in.Fault.Message, plugin) {
		t.Fatalf("after tampering: %s, fault %+v; want ERROR with a checksum mismatch naming %s", in.Status, in.Fault, plugin)
	}
}

// createActive creates an instance through c and waits until it is
// ACTIVE; it returns the id.
func createActive(t *testing.T, c *client.Client, name string) string {
	t.Helper()
	ctx := context.Background()
	id, r, err := c.Create(ctx, client.CreateRequest{Name: name, FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.Wait(ctx, id, r.RequestID, nil)
	if err != nil || in.Status != "ACTIVE" {
		t.Fatalf("create %s: %+v %v, want ACTIVE", name, in, err)
	}
	return id
}

// freeAddr is a loopback address with a port nobody listened on a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
