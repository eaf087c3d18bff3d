package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lucid-project/lucid/sdk/driver"
	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// A plugin sees none of the host's secrets: its environment is exactly
// PATH, its env and pass_env (those set) and the plugin protocol's
// variables, whatever else the host has.
func TestPluginEnvironment(t *testing.T) {
	t.Setenv("LUCID_TEST_SECRET", "hunter2")
	t.Setenv("LUCID_TEST_PASSED", "passed on")
	os.Unsetenv("LUCID_TEST_UNSET")
	sock := filepath.Join(t.TempDir(), "fake.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, Config{Name: "fake", Path: fakePath, SocketDir: t.TempDir(),
		Config:  []byte(`{"control_socket": "` + sock + `"}`),
		Env:     map[string]string{"FAKE_MODE": "demo", "LUCID_TEST_PASSED": "overridden"},
		PassEnv: []string{"LUCID_TEST_PASSED", "LUCID_TEST_UNSET", "HOME"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())

	// The fake's control API answers with its os.Environ() (a value may
	// span lines: the certificate does).
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := hc.Get("http://fake/env")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []string
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range list {
		name, value, _ := strings.Cut(kv, "=")
		env[name] = value
	}
	names := slices.Sorted(maps.Keys(env))
	want := []string{"FAKE_MODE", "HOME", driver.Handshake.MagicCookieKey, "LUCID_TEST_PASSED", "PATH",
		"PLUGIN_CLIENT_CERT", "PLUGIN_MAX_PORT", "PLUGIN_MIN_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_UNIX_SOCKET_DIR"}
	if os.Getenv("HOME") == "" {
		want = slices.DeleteFunc(want, func(n string) bool { return n == "HOME" })
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("the plugin's environment has\n%v\nwant exactly\n%v", names, want)
	}
	if v, ok := env["LUCID_TEST_SECRET"]; ok {
		t.Fatalf("the plugin sees the host's LUCID_TEST_SECRET=%s", v)
	}
	for name, value := range map[string]string{"FAKE_MODE": "demo", "LUCID_TEST_PASSED": "overridden", "PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME")} {
		if env[name] != value {
			t.Errorf("%s=%q in the plugin, want %q", name, env[name], value)
		}
	}
	if !strings.HasPrefix(env["PLUGIN_CLIENT_CERT"], "-----BEGIN CERTIFICATE-----") {
		t.Errorf("PLUGIN_CLIENT_CERT=%.40q…: AutoMTLS did not hand the plugin the host's certificate", env["PLUGIN_CLIENT_CERT"])
	}
}

// pluginEnv builds exactly PATH, pass_env's set variables and env, with
// env winning, then the protocol's variables.
func TestPluginEnvOrder(t *testing.T) {
	host := map[string]string{"PATH": "/usr/bin", "HOME": "/root", "SECRET": "x"}
	lookup := func(n string) (string, bool) { v, ok := host[n]; return v, ok }
	for _, tc := range []struct {
		name string
		cfg  Config
		host map[string]string
		want []string
	}{
		{"nothing configured", Config{}, host, []string{"PATH=/usr/bin", "P=1"}},
		{"pass_env", Config{PassEnv: []string{"HOME", "UNSET"}}, host, []string{"HOME=/root", "PATH=/usr/bin", "P=1"}},
		{"env wins", Config{PassEnv: []string{"HOME"}, Env: map[string]string{"HOME": "/home/x", "PATH": "/opt/bin", "A": ""}},
			host, []string{"A=", "HOME=/home/x", "PATH=/opt/bin", "P=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pluginEnv(tc.cfg, lookup, []string{"P=1"}); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The plugin's gRPC socket speaks only mutual TLS: a client without the
// host's certificate, as another process of the same user would be,
// gets nothing from it.
func TestPluginRequiresMTLS(t *testing.T) {
	sockDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, Config{Name: "fake", Path: fakePath, SocketDir: sockDir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	socks, _ := filepath.Glob(filepath.Join(sockDir, "plugin-dir*", "plugin*"))
	if len(socks) != 1 {
		t.Fatalf("plugin sockets %v, want one", socks)
	}
	conn, err := grpc.NewClient("unix://"+socks[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	_, err = driverpb.NewDriverClient(conn).Info(cctx, &driverpb.InfoRequest{})
	if err == nil {
		t.Fatal("a plaintext client got Info from the plugin")
	}
	if errors.Is(err, context.Canceled) {
		t.Fatalf("Info: %v", err)
	}
	// The host itself still talks to it.
	if _, err := p.List(ctx); err != nil {
		t.Fatalf("the host's own call: %v", err)
	}
}

// A plugin's long error text is cut before it can become an instance's
// fault: the caller sees at most MaxMessage bytes of it, and the error
// still matches what it wraps.
func TestLongErrorClipped(t *testing.T) {
	long := strings.Repeat("é", 100_000) // 200,000 bytes, two per character
	p, _ := startFake(t, `{"fail_spawn": "`+long+`"}`)
	err := p.Spawn(context.Background(), driver.Spec{ID: "x"})
	if err == nil {
		t.Fatal("Spawn succeeded")
	}
	var ce *CallError
	if !errors.As(err, &ce) || !strings.Contains(ce.Err.Error(), long) {
		t.Fatalf("err = %T %.100v, want a *CallError wrapping the whole message", err, err)
	}
	prefix := `driver fake: Spawn: `
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) || !utf8.ValidString(msg) {
		t.Fatalf("message %.100q… not a valid one starting with %q", msg, prefix)
	}
	kept, cut, ok := strings.Cut(strings.TrimPrefix(msg, prefix), "… (")
	if !ok || len(kept) > MaxMessage || len(kept) < MaxMessage-1 || cut != fmt.Sprintf("%d more bytes)", len(ce.Err.Error())-len(kept)) {
		t.Fatalf("clipped to %d bytes with %q, want at most %d and the count of the rest", len(kept), cut, MaxMessage)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven cha… (1 more bytes)"},
		{"aéb", 2, "a… (3 more bytes)"}, // é is two bytes: not split
		{"", 0, ""},
	} {
		if got := clip(tc.s, tc.max); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.s, tc.max, got, tc.want)
		}
	}
}
