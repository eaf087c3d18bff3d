package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/internal/testenv"
)

// TestCachePrune checks that an Engine keeps, in its cache directory, the
// compiled code of the modules it loaded, and removes that of others: the
// old layout's directory too, but nothing recently touched (another
// process may be writing it) and nothing it did not create.
func TestCachePrune(t *testing.T) {
	dir := t.TempDir()
	bin, err := os.ReadFile(policy.RawGuestWasm)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])

	old := time.Now().Add(-2 * time.Hour)
	entry := func(name string, mtime time.Time) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "wazero-dev-amd64-linux"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "wazero-dev-amd64-linux", "code"), make([]byte, 1024), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// Seed the cache with the module's compiled code from the run's
	// shared cache (an Engine writes it there): compiling it afresh takes
	// 20-50 s under -race.
	shared, _ := newEngine(t)
	load(t, shared, policy.Config{})
	seed := filepath.Join(testenv.CacheDir(t), digest)
	if err := os.CopyFS(filepath.Join(dir, digest), os.DirFS(seed)); err != nil {
		t.Fatalf("the shared cache lacks the module: %v", err)
	}
	unused := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	recent := "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	entry(unused, old)
	entry(recent, time.Now().Add(-time.Minute))
	entry("wazero-v1.11.0-amd64-linux", old) // the flat layout of older Lucid versions
	entry("notes", old)
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}

	e, err := policy.NewEngine(context.Background(), policy.EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Load(context.Background(), policy.Config{Name: "raw", Hook: policy.HookValidate, Path: policy.RawGuestWasm})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Digest(); got != digest[:12] {
		t.Errorf("Digest() = %s, want %s", got, digest[:12])
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"README", digest, recent, "notes"}
	slices.Sort(want)
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Errorf("after Close the cache holds %v, want %v", got, want)
	}
	compiled := files(t, filepath.Join(dir, digest))
	var size int64
	for _, f := range compiled {
		size += f.size
	}
	t.Logf("compiled code of a %d KiB module: %d files, %d KiB", len(bin)>>10, len(compiled), size>>10)
	if size < int64(len(bin)) {
		t.Errorf("the cache holds %d bytes for the module, want its machine code", size)
	}

	// A second Engine loads the module from the cache: nothing is written.
	e2, err := policy.NewEngine(context.Background(), policy.EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Load(context.Background(), policy.Config{Name: "raw", Hook: policy.HookValidate, Path: policy.RawGuestWasm}); err != nil {
		t.Fatal(err)
	}
	if err := e2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again := files(t, filepath.Join(dir, digest)); !slices.Equal(again, compiled) {
		t.Errorf("loading from the cache changed it: %v, was %v", again, compiled)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

type file struct {
	path  string
	size  int64
	mtime time.Time
}

func files(t *testing.T, dir string) []file {
	t.Helper()
	var out []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, file{p, info.Size(), info.ModTime()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
