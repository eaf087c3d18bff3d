// Package policy hosts Lucid's WebAssembly policies: it loads a module,
// checks that it speaks ABI v1, keeps a pool of warm instances and calls
// the validate and reconcile hooks with time and memory limits, turning
// every guest failure into an error plus a configured fallback answer.
//
// It is the only package that imports wazero. The guest side of the
// contract is sdk/policy; the contract itself is DESIGN.md section 6.
package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	// CacheDir is where compiled machine code is kept between runs, so a
	// restart loads a Go policy in tens of milliseconds instead of about a
	// second. Each module gets a subdirectory named for its sha256; when
	// the Engine closes, it removes the subdirectories of modules it did
	// not load (see RATIONALE.md). "" keeps compiled code in memory only.
	CacheDir string
	// Logger receives the guests' stdout and stderr, one record per line,
	// tagged with the policy name. nil discards them.
	Logger *slog.Logger
}

// cacheGrace spares, from pruning, cache entries another process may be
// writing or may have just loaded: an entry touched this recently is kept
// even if this Engine did not use it.
const cacheGrace = time.Hour

// Engine compiles and owns policy modules. Modules loaded by one Engine
// from the same .wasm (by content) share one compilation cache, so loading
// it twice compiles it once, and its machine code is freed when the last
// of them closes. Each Module gets its own wazero runtime, because memory
// limits are per runtime (see RATIONALE.md).
//
// An Engine is safe for concurrent use. Close it when done; Close closes
// every Module it loaded that is still open, then prunes CacheDir.
type Engine struct {
	dir    string // CacheDir, absolute; "" for memory only
	logger *slog.Logger

	mu      sync.Mutex
	caches  map[string]*sharedCache // by the module's digest
	used    map[string]bool         // digests loaded by this Engine
	modules map[*Module]struct{}
	closed  bool
}

// sharedCache is the compilation cache of one module's content, counted by
// the Modules using it.
type sharedCache struct {
	cache wazero.CompilationCache
	refs  int
}

// NewEngine returns an Engine. It fails only if CacheDir cannot be created.
func NewEngine(ctx context.Context, cfg EngineConfig) (*Engine, error) {
	e := &Engine{logger: cfg.Logger, caches: map[string]*sharedCache{}, used: map[string]bool{}, modules: map[*Module]struct{}{}}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheDir != "" {
		dir, err := filepath.Abs(cfg.CacheDir)
		if err == nil {
			err = os.MkdirAll(dir, 0o700)
		}
		if err != nil {
			return nil, fmt.Errorf("policy: compilation cache %s: %w", cfg.CacheDir, err)
		}
		e.dir = dir
	}
	return e, nil
}

// Close closes every open Module (waiting for their calls in progress, see
// Module.Close), then removes from CacheDir what belongs to modules this
// Engine did not load. Further Loads fail with ErrClosed. Close is
// idempotent.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	mods := make([]*Module, 0, len(e.modules))
	for m := range e.modules {
		mods = append(mods, m)
	}
	e.mu.Unlock()

	var errs []error
	for _, m := range mods {
		errs = append(errs, m.Close(ctx))
	}
	e.pruneCache()
	return errors.Join(errs...)
}

// openCache returns the compilation cache for the module with this digest,
// creating it (and its directory, whose time it sets to now to mark the
// use) on first use. Each call must be paired with releaseCache.
func (e *Engine) openCache(ctx context.Context, digest string) (wazero.CompilationCache, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if c := e.caches[digest]; c != nil {
		c.refs++
		return c.cache, nil
	}
	var cache wazero.CompilationCache
	if e.dir == "" {
		cache = wazero.NewCompilationCache()
	} else {
		dir := filepath.Join(e.dir, digest)
		c, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", dir, err)
		}
		now := time.Now()
		if err := os.Chtimes(dir, now, now); err != nil {
			e.logger.Warn("cannot mark a policy cache entry as used", "dir", dir, "err", err)
		}
		cache = c
	}
	e.caches[digest] = &sharedCache{cache: cache, refs: 1}
	e.used[digest] = true
	return cache, nil
}

// releaseCache drops one use of a digest's cache, and closes the cache,
// freeing its machine code, when it was the last. The files stay.
func (e *Engine) releaseCache(ctx context.Context, digest string) {
	e.mu.Lock()
	c := e.caches[digest]
	if c == nil {
		e.mu.Unlock()
		return
	}
	c.refs--
	if c.refs > 0 {
		e.mu.Unlock()
		return
	}
	delete(e.caches, digest)
	e.mu.Unlock()
	if err := c.cache.Close(ctx); err != nil {
		e.logger.Warn("closing a policy compilation cache", "digest", digest, "err", err)
	}
}

// pruneCache removes the cache entries of modules this Engine did not
// load: subdirectories named like a digest, and those of the flat layout
// older versions wrote (wazero-*), unless touched within cacheGrace. It
// touches nothing else, so a CacheDir pointed at the wrong place loses
// nothing it did not create. Failures are logged, not returned: a cache
// that cannot be pruned still works.
func (e *Engine) pruneCache() {
	if e.dir == "" {
		return
	}
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		e.logger.Warn("cannot prune the policy compilation cache", "dir", e.dir, "err", err)
		return
	}
	for _, ent := range entries {
		name := ent.Name()
		if !ent.IsDir() || e.used[name] || !(isDigest(name) || strings.HasPrefix(name, "wazero-")) {
			continue
		}
		info, err := ent.Info()
		if err != nil || time.Since(info.ModTime()) < cacheGrace {
			continue
		}
		path := filepath.Join(e.dir, name)
		if err := os.RemoveAll(path); err != nil {
			e.logger.Warn("cannot prune the policy compilation cache", "dir", path, "err", err)
			continue
		}
		e.logger.Debug("pruned an unused policy compilation", "dir", path)
	}
}

// isDigest reports whether name is a hex sha256, as the cache's
// subdirectories are named.
func isDigest(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// track registers m so that Close can close it; false if e is closed.
func (e *Engine) track(m *Module) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.modules[m] = struct{}{}
	return true
}

func (e *Engine) untrack(m *Module) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.modules, m)
}
