package driver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
	"github.com/lucid-project/lucid/sdk/driver/drivertest"
)

// fakePath is the plugins/fake binary and minimalPath the
// examples/driver-minimal one (a driver without optional interfaces), both
// built once per test run by TestMain.
var fakePath, minimalPath string

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "host" {
		os.Exit(runHost())
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lucid-core-driver-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fakePath = filepath.Join(dir, "lucid-driver-fake")
	minimalPath = filepath.Join(dir, "lucid-driver-minimal")
	for path, pkg := range map[string]string{fakePath: "plugins/fake", minimalPath: "examples/driver-minimal"} {
		build := exec.Command("go", "build", "-o", path, "github.com/lucid-project/lucid/"+pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
			return 1
		}
	}
	return m.Run()
}

// logBuffer collects slog output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startFake starts the fake with the given JSON config and closes it at
// the end of the test, checking that no process or socket is left.
func startFake(t testing.TB, config string) (*Plugin, *logBuffer) {
	t.Helper()
	return startPlugin(t, "fake", fakePath, config)
}

// startPlugin starts the plugin at path under name, as startFake does.
func startPlugin(t testing.TB, name, path, config string) (*Plugin, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	sockDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, Config{
		Name:      name,
		Path:      path,
		Config:    []byte(config),
		SocketDir: sockDir,
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		pid := p.pid()
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		if pid != 0 && syscall.Kill(pid, 0) == nil {
			t.Errorf("plugin pid %d still running after Close", pid)
		}
		if ents, _ := os.ReadDir(sockDir); len(ents) != 0 {
			t.Errorf("socket dir not cleaned after Close: %v", ents)
		}
	})
	return p, logs
}

// pid is the current plugin process id, 0 while it is down.
func (p *Plugin) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return p.cur.pid
}

// eventually polls cond every 10ms until it returns nil or the deadline
// passes, and fails with cond's last error.
func eventually(t *testing.T, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	p, _ := startFake(t, `{}`)
	drivertest.Run(t, p)
	info, _ := p.Info(context.Background())
	wantCaps := []string{driver.CapEvents, "power", "reboot", driver.CapRebuild, driver.CapResize}
	if info.Name != "fake" || !slices.Equal(info.Capabilities, wantCaps) || !slices.Equal(p.Capabilities(), wantCaps) {
		t.Errorf("Info() = %+v, Capabilities() = %q; want name fake, capabilities %q", info, p.Capabilities(), wantCaps)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noHandshake := filepath.Join(dir, "no-handshake")
	if err := os.WriteFile(noHandshake, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	sum, err := fileSHA256(fakePath)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		cfg      Config
		wantIs   error
		wantText []string
	}{
		{"missing path", Config{Path: missing}, ErrLaunch, []string{missing}},
		{"not executable", Config{Path: notExec}, ErrLaunch, []string{notExec, "not an executable"}},
		{"directory", Config{Path: dir}, ErrLaunch, []string{dir}},
		{"no handshake", Config{Path: noHandshake}, ErrLaunch, []string{noHandshake}},
		{"checksum mismatch", Config{Path: fakePath, Checksum: "sha256:" + strings.Repeat("00", 32)}, ErrChecksum, []string{fakePath, "sha256:" + sum}},
		{"malformed checksum", Config{Path: fakePath, Checksum: "md5:abc"}, ErrChecksum, []string{`"md5:abc"`}},
		{"unknown config key", Config{Path: fakePath, Config: []byte(`{"bogus": 1}`)}, driver.ErrInvalidConfig, []string{fakePath, "bogus"}},
		{"bad duration", Config{Path: fakePath, Config: []byte(`{"boot_delay": "soon"}`)}, driver.ErrInvalidConfig, []string{"boot_delay", `"soon"`}},
		{"good checksum, bad config", Config{Path: fakePath, Checksum: "sha256:" + sum, Config: []byte(`{"crash_on": "Nope"}`)}, driver.ErrInvalidConfig, []string{"crash_on"}},
		{"env sets the cookie", Config{Path: fakePath, Env: map[string]string{driver.Handshake.MagicCookieKey: "x"}}, ErrEnv, []string{`"` + driver.Handshake.MagicCookieKey + `"`}},
		{"pass_env takes a protocol variable", Config{Path: fakePath, PassEnv: []string{"HOME", "PLUGIN_CLIENT_CERT"}}, ErrEnv, []string{`"PLUGIN_CLIENT_CERT"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Name = "test"
			tt.cfg.SocketDir = t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := Start(ctx, tt.cfg)
			if err == nil {
				p.Close(ctx)
				t.Fatal("Start succeeded, want error")
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("Start err = %v, want errors.Is %v", err, tt.wantIs)
			}
			for _, s := range append(tt.wantText, `driver "test"`) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Start err = %v, want it to mention %q", err, s)
				}
			}
			if ents, _ := os.ReadDir(tt.cfg.SocketDir); len(ents) != 0 {
				t.Errorf("failed Start left %v in the socket dir", ents)
			}
		})
	}
}

func TestGoodChecksum(t *testing.T) {
	sum, err := fileSHA256(fakePath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(context.Background(), Config{Name: "fake", Path: fakePath, Checksum: "sha256:" + sum, SocketDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Start with the right checksum: %v", err)
	}
	p.Close(context.Background())
}

// TestCrashInFlight: the plugin exits in the middle of a call. The call
// fails at once with ErrPluginExited, the supervisor restarts the plugin
// and re-applies the config, and calls work again.
func TestCrashInFlight(t *testing.T) {
	p, logs := startFake(t, `{"crash_on": "Spawn"}`)
	ctx := context.Background()
	firstPID := p.pid()

	start := time.Now()
	err := p.Spawn(ctx, driver.Spec{ID: "doomed"})
	if !errors.Is(err, ErrPluginExited) || !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Spawn err = %v, want ErrPluginExited and driver.ErrUnavailable", err)
	}
	var ce *CallError
	if !errors.As(err, &ce) || ce.Op != "Spawn" || ce.Driver != "fake" {
		t.Errorf("Spawn err = %#v, want a *CallError for fake Spawn", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Spawn on a crashing plugin took %v", took)
	}

	eventually(t, 10*time.Second, func() error { _, err := p.List(ctx); return err })
	if pid := p.pid(); pid == firstPID || pid == 0 {
		t.Errorf("pid after restart = %d, first was %d", pid, firstPID)
	}
	// The restarted plugin got the same config: Spawn still crashes.
	if err := p.Spawn(ctx, driver.Spec{ID: "doomed-again"}); !errors.Is(err, ErrPluginExited) {
		t.Errorf("Spawn after restart: err = %v, want ErrPluginExited (crash_on re-applied)", err)
	}
	if !strings.Contains(logs.String(), "crash_on") {
		t.Errorf("plugin stderr did not reach the logger; logs:\n%s", logs)
	}
}

// TestKilled: SIGKILL the plugin. Calls fail with ErrPluginExited until
// the supervisor has restarted it; the restarted plugin knows the instances
// through state_file; the killed process's socket dir is gone.
func TestKilled(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	p, _ := startFake(t, `{"state_file": "`+state+`"}`)
	ctx := context.Background()
	if err := p.Spawn(ctx, driver.Spec{ID: "survivor"}); err != nil {
		t.Fatal(err)
	}
	firstPID := p.pid()
	if err := syscall.Kill(firstPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// Until the exit is noticed a call may still be in the old connection's
	// hands; it must fail with ErrPluginExited, never hang.
	sawExited := false
	eventually(t, 10*time.Second, func() error {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		in, err := p.Inspect(callCtx, "survivor")
		switch {
		case errors.Is(err, ErrPluginExited):
			if !errors.Is(err, driver.ErrUnavailable) {
				t.Fatalf("Inspect while restarting: err = %v, want it to match driver.ErrUnavailable too", err)
			}
			sawExited = true
			return err
		case err != nil:
			t.Fatalf("Inspect while restarting: err = %v, want ErrPluginExited", err)
		case p.pid() == firstPID:
			return errors.New("still talking to the killed process")
		case in.Power != driver.PowerRunning:
			t.Fatalf("Inspect after restart = %+v, want running", in)
		}
		return nil
	})
	if !sawExited {
		t.Log("the restart was quicker than the first poll; no call saw ErrPluginExited")
	}
	if syscall.Kill(firstPID, 0) == nil {
		t.Errorf("killed pid %d still exists (not reaped)", firstPID)
	}
}

func TestCancelDuringSlowSpawn(t *testing.T) {
	p, _ := startFake(t, `{"boot_delay": "1h"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Spawn(ctx, driver.Spec{ID: "slow"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Spawn err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Spawn took %v after its deadline", took)
	}
	// The plugin's ctx was cancelled too: the instance never appeared.
	if _, err := p.Inspect(context.Background(), "slow"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect after abandoned Spawn: err = %v, want ErrNotFound", err)
	}
}

func TestCloseIdempotentAndFinal(t *testing.T) {
	p, _ := startFake(t, `{}`)
	ctx := context.Background()
	for i := range 2 {
		if err := p.Close(ctx); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := p.List(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close: err = %v, want ErrClosed", err)
	}
}

func TestReconfigure(t *testing.T) {
	p, _ := startFake(t, `{}`)
	ctx := context.Background()
	if err := p.Configure(ctx, []byte(`{"nope": true}`)); !errors.Is(err, driver.ErrInvalidConfig) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Configure(bad) err = %v, want ErrInvalidConfig naming the key", err)
	}
	if err := p.Configure(ctx, []byte(`{"fail_spawn": "no capacity"}`)); err != nil {
		t.Fatal(err)
	}
	if err := p.Spawn(ctx, driver.Spec{ID: "x"}); err == nil || !strings.Contains(err.Error(), "no capacity") {
		t.Errorf("Spawn err = %v, want the injected failure", err)
	}
}

func fileSHA256(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", sha256.Sum256(data)), nil
}
