// Package testenv gives Lucid's tests the real components they run
// against: an embedded etcd member on a loopback port, and the plugin
// executables and .wasm policies built from this tree. Everything a test
// starts is stopped with t.Cleanup.
//
// Binaries are built once per `go test` run, not once per package: they
// land in a directory under the OS temp dir named by a hash of every Go
// source file in the repository, shared (under a file lock) by all the
// test processes of a run, and reused by later runs until a source
// changes. Old directories are pruned after a day. The same directory
// holds the wasm compile cache tests use, so tests never touch the user's
// cache.
package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/core/store/embedded"
)

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
// root, e.g. "./plugins/fake") and returns the executable's path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	return build(t, pkg, "", nil)
}

// Wasm builds the Go policy package pkg as a WASI reactor
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared) and returns the .wasm
// path.
func Wasm(t testing.TB, pkg string) string {
	t.Helper()
	return build(t, pkg, ".wasm", []string{"GOOS=wasip1", "GOARCH=wasm"}, "-buildmode=c-shared")
}

// CacheDir is the wasm compile cache tests share within a run: a
// temporary directory, never the user's cache.
func CacheDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(runDir(t), "wasm-cache")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// run is what this test process knows about the shared build directory.
var run struct {
	sync.Mutex
	dir string
}

// runDir returns the shared directory for the current sources, creating
// it (and pruning stale siblings) on first use.
func runDir(t testing.TB) string {
	t.Helper()
	run.Lock()
	defer run.Unlock()
	if run.dir != "" {
		return run.dir
	}
	root := Root(t)
	key, err := sourceKey(root)
	if err != nil {
		t.Fatalf("testenv: hash sources: %v", err)
	}
	base := filepath.Join(os.TempDir(), "lucid-testenv")
	run.dir = filepath.Join(base, key)
	if err := os.MkdirAll(run.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	os.Chtimes(run.dir, now, now)
	if entries, err := os.ReadDir(base); err == nil {
		for _, e := range entries {
			if info, err := e.Info(); err == nil && e.Name() != key && now.Sub(info.ModTime()) > 24*time.Hour {
				os.RemoveAll(filepath.Join(base, e.Name()))
			}
		}
	}
	return run.dir
}

// sourceKey hashes the Go toolchain version and every file a build could
// read from the repository: Go sources, go.mod and go.sum, and test data.
func sourceKey(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "data") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") || strings.HasSuffix(name, ".s") || name == "go.mod" || name == "go.sum" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

func build(t testing.TB, pkg, ext string, env []string, flags ...string) string {
	t.Helper()
	dir := runDir(t)
	name := strings.Trim(strings.NewReplacer("/", "_", ".", "_").Replace(pkg), "_")
	if name == "" {
		name = "lucid" // the module root: the lucid command
	}
	out := filepath.Join(dir, name+ext)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	// Other test processes of this run may be building the same thing.
	unlock, err := lock(out + ".lock")
	if err != nil {
		t.Fatalf("testenv: lock: %v", err)
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return out
	}
	tmp := out + ".tmp"
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", tmp, pkg)
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = Root(t)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// lock takes an exclusive lock on path, shared by every process.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// Etcd starts a fresh embedded etcd member on a loopback port, with its
// data in a temporary directory, stopped when the test ends.
func Etcd(t testing.TB) *embedded.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := embedded.Start(ctx, embedded.Config{DataDir: filepath.Join(t.TempDir(), "etcd"), FastElection: true})
	if err != nil {
		t.Fatalf("testenv: start etcd: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

// Store starts a fresh embedded etcd member and returns a Store on it,
// under a prefix of its own, as a node has it (transactions straight to
// the member's KV service; ReadCountingStore's go through clientv3).
// Both are closed when the test ends.
func Store(t testing.TB) *store.Store {
	t.Helper()
	m := Etcd(t)
	s := store.New(m.Client(), fmt.Sprintf("/lucid-test-%d", time.Now().UnixNano())).WithKV(m.KV())
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

// PutRaw writes value at key (a full key, prefix included) into the etcd
// at url behind Lucid's back, so a test can plant what Lucid never writes:
// garbage, an old schema.
func PutRaw(t testing.TB, url, key, value string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
}

// ChildPIDs returns the pids of this process's children running the
// executable exe (for example a driver plugin the test's node started).
func ChildPIDs(t testing.TB, exe string) []int {
	t.Helper()
	return Descendants(t, os.Getpid(), exe)
}

// Descendants returns the pids of parent's children running exe.
func Descendants(t testing.TB, parent int, exe string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Field 4 is the ppid; field 2 (comm) may hold spaces but ends
		// with the last ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if ppid != parent {
			continue
		}
		if target, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && target == exe {
			out = append(out, pid)
		}
	}
	return out
}

// Alive reports whether process pid exists (and is not a zombie).
func Alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z"
}

// RawTxn measures the baseline every Lucid benchmark reports against: n
// raw two-key compare-and-swap transactions (two compares on ModRevision,
// two puts, the shape of a Lucid status change without its JSON, policy
// and history) with par concurrent writers, over a TCP client to the etcd
// at url. It returns the mean time per transaction and transactions per
// second.
func RawTxn(t testing.TB, url string, n, par int) (per time.Duration, rate float64) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	run := fmt.Sprintf("/raw-%d", time.Now().UnixNano())
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				k := fmt.Sprintf("%s/%d", run, i)
				_, err := cli.Txn(ctx).If(
					clientv3.Compare(clientv3.ModRevision(k+"/state"), "=", 0),
					clientv3.Compare(clientv3.ModRevision(k+"/transition"), "=", 0),
				).Then(clientv3.OpPut(k+"/state", "x"), clientv3.OpPut(k+"/transition", "y")).Commit()
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("testenv: %d raw transactions failed", failed.Load())
	}
	return took / time.Duration(n), float64(n) / took.Seconds()
}

// GetRaw reads the value at key (a full key) from the etcd at url, ""
// when absent.
func GetRaw(t testing.TB, url, key string) string {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// RangeRaw reads every key under prefix from the etcd at url in one
// ranged read over a TCP client, the baseline a sweep is measured
// against, and returns how many keys it got and how long the read took.
func RangeRaw(t testing.TB, url, prefix string) (int, time.Duration) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		MaxCallRecvMsgSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Kvs), took
}
