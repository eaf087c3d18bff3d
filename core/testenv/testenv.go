// Package testenv gives Lucid's tests the real components they run
// against: an embedded etcd member on a loopback port, the plugin
// executables and the .wasm policies built from this tree. Everything is
// cleaned up with t.Cleanup.
//
// Builds happen once per test binary and land in a temporary directory
// removed at exit by Cleanup in TestMain (see Main).
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/store"
)

// builds caches what this test binary has built. Test-only state: it lives
// as long as the test process and is removed by Main.
var builds = struct {
	sync.Mutex
	dir  string
	done map[string]string
}{done: map[string]string{}}

// Main wraps testing.M: it runs the tests and removes the build directory.
// Use it from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	builds.Lock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.Unlock()
	os.Exit(code)
}

// Root is the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds the Go main package pkg (a path relative to the repository
// root, e.g. "./plugins/fake") once per test binary and returns the
// executable's path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	return build(t, pkg, ".bin", nil)
}

// Wasm builds the Go policy package pkg as a WASI reactor
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared) once per test binary and
// returns the .wasm path.
func Wasm(t testing.TB, pkg string) string {
	t.Helper()
	return build(t, pkg, ".wasm", []string{"GOOS=wasip1", "GOARCH=wasm"}, "-buildmode=c-shared")
}

func build(t testing.TB, pkg, ext string, env []string, flags ...string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if p, ok := builds.done[pkg+ext]; ok {
		return p
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "lucid-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir = d
	}
	out := filepath.Join(builds.dir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg)+ext)
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", out, pkg)
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = Root(t)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	builds.done[pkg+ext] = out
	return out
}

func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// Store starts a fresh embedded etcd member on a loopback port, with its
// data in a temporary directory, and returns a Store on it. Both are
// closed when the test ends.
func Store(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{
		Embedded: &store.EmbeddedConfig{DataDir: filepath.Join(t.TempDir(), "etcd"), FastElection: true},
		Prefix:   fmt.Sprintf("/lucid-test-%d", time.Now().UnixNano()),
	})
	if err != nil {
		t.Fatalf("testenv: start etcd: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Eventually polls cond every 5ms until it returns true or timeout passes,
// then fails the test with msg. It replaces sleeping for a guessed time.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: after %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
