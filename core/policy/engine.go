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
	"sync"

	"github.com/tetratelabs/wazero"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	// CacheDir is where compiled machine code is kept between runs, so a
	// restart loads a Go policy in tens of milliseconds instead of about a
	// second. "" keeps the cache in memory only.
	CacheDir string
	// Logger receives the guests' stdout and stderr, one record per line,
	// tagged with the policy name. nil discards them.
	Logger *slog.Logger
}

// Engine compiles and owns policy modules. Modules loaded by one Engine
// share its compilation cache, so loading the same .wasm twice compiles
// it once. Each Module gets its own wazero runtime, because memory limits
// are per runtime (see RATIONALE.md).
//
// An Engine is safe for concurrent use. Close it when done; Close closes
// every Module it loaded that is still open.
type Engine struct {
	cache  wazero.CompilationCache
	logger *slog.Logger

	mu      sync.Mutex
	modules map[*Module]struct{}
	closed  bool
}

// NewEngine returns an Engine. It fails only if CacheDir cannot be created.
func NewEngine(ctx context.Context, cfg EngineConfig) (*Engine, error) {
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("policy: compilation cache %s: %w", cfg.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{cache: cache, logger: logger, modules: map[*Module]struct{}{}}, nil
}

// Close closes every open Module (waiting for their calls in progress, see
// Module.Close) and releases the compilation cache. Further Loads fail
// with ErrClosed. Close is idempotent.
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
	errs = append(errs, e.cache.Close(ctx))
	return errors.Join(errs...)
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

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

func (e *Engine) untrack(m *Module) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.modules, m)
}
