package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout        = 100 * time.Millisecond
	DefaultMemoryLimitMiB = 64
)

// startTimeout bounds instantiation (_initialize, which runs the guest's
// init functions) and lucid_policy_info at load time. It is generous
// because a Go guest's runtime start is ~6 ms but a slow machine under
// the race detector is much slower, and it only guards against a guest
// that never finishes starting.
const startTimeout = 5 * time.Second

// maxResponse caps what the host copies out of a guest per call.
const maxResponse = 1 << 20

// Fallback is the answer a Module gives when its policy fails.
type Fallback string

// The fallbacks. Validate modules accept Deny (default) and Allow;
// reconcile modules accept Flag (default) and Leave.
const (
	FallbackDefault Fallback = ""
	FallbackDeny    Fallback = "deny"
	FallbackAllow   Fallback = "allow"
	FallbackFlag    Fallback = "flag"
	FallbackLeave   Fallback = "leave"
)

// Config describes one policy module to load.
type Config struct {
	// Name identifies the policy in errors and logs (the HCL label).
	Name string
	// Hook is the hook the module is loaded for; the module must export it
	// and declare it in its info.
	Hook Hook
	// Path is the .wasm file.
	Path string
	// Settings is the JSON object passed to lucid_init; nil means "{}".
	Settings []byte
	// Timeout bounds each hook call; zero means DefaultTimeout.
	Timeout time.Duration
	// MemoryLimitMiB caps each instance's linear memory; zero means
	// DefaultMemoryLimitMiB.
	MemoryLimitMiB uint32
	// PoolSize is how many instances run calls at once and stay warm
	// between calls; zero means GOMAXPROCS. Callers beyond it wait (subject
	// to their context) for an instance.
	PoolSize int
	// Fallback is the answer given when the policy fails; see Fallback.
	Fallback Fallback
}

func (c Config) withDefaults() (Config, error) {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MemoryLimitMiB == 0 {
		c.MemoryLimitMiB = DefaultMemoryLimitMiB
	}
	if c.MemoryLimitMiB > 4096 {
		return c, fmt.Errorf("%w: memory limit %d MiB is above the 4096 MiB of wasm32", ErrConfig, c.MemoryLimitMiB)
	}
	if c.PoolSize <= 0 {
		c.PoolSize = runtime.GOMAXPROCS(0)
	}
	if len(bytes.TrimSpace(c.Settings)) == 0 {
		c.Settings = []byte("{}")
	}
	switch c.Hook {
	case HookValidate:
		if c.Fallback == FallbackDefault {
			c.Fallback = FallbackDeny
		}
		if c.Fallback != FallbackDeny && c.Fallback != FallbackAllow {
			return c, fmt.Errorf("%w: fallback %q is not one of deny, allow for a validate policy", ErrConfig, c.Fallback)
		}
	case HookReconcile:
		if c.Fallback == FallbackDefault {
			c.Fallback = FallbackFlag
		}
		if c.Fallback != FallbackFlag && c.Fallback != FallbackLeave {
			return c, fmt.Errorf("%w: fallback %q is not one of flag, leave for a reconcile policy", ErrConfig, c.Fallback)
		}
	default:
		return c, fmt.Errorf("%w: unknown hook %q (want validate or reconcile)", ErrConfig, c.Hook)
	}
	return c, nil
}

// Module is a loaded policy: compiled once, run in a pool of instances.
//
// Every call is bounded by Config.Timeout and Config.MemoryLimitMiB. When
// the guest traps, times out, exits or answers garbage, the call returns
// an error wrapping ErrTrap, ErrTimeout or ErrBadResponse together with
// the fallback answer, and the instance is thrown away; the next call gets
// a fresh one. A Module is safe for concurrent use; Close it when done.
type Module struct {
	cfg    Config
	info   Info
	engine *Engine
	logger *slog.Logger

	rt       wazero.Runtime
	compiled wazero.CompiledModule

	// tokens holds one entry per call in progress (cap PoolSize); idle
	// holds warm instances (cap PoolSize). See RATIONALE.md.
	tokens chan struct{}
	idle   chan *guest
	closed atomic.Bool
}

// Load compiles the module at cfg.Path, starts one instance, checks the
// ABI version, exports and declared hooks, and passes cfg.Settings to
// lucid_init. Errors are *LoadError wrapping, for example, fs.ErrNotExist,
// ErrNotWasm, ErrABIVersion, ErrMissingExport or a *SettingsError (which
// matches ErrSettings); an invalid cfg wraps ErrConfig.
func (e *Engine) Load(ctx context.Context, cfg Config) (*Module, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, &LoadError{Name: cfg.Name, Path: cfg.Path, Err: err}
	}
	m, err := e.load(ctx, cfg)
	if err != nil {
		return nil, &LoadError{Name: cfg.Name, Path: cfg.Path, Err: err}
	}
	return m, nil
}

func (e *Engine) load(ctx context.Context, cfg Config) (_ *Module, err error) {
	bin, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bin, []byte("\x00asm")) {
		return nil, fmt.Errorf("%w: no \\0asm magic at the start of the file", ErrNotWasm)
	}
	if e.isClosed() {
		return nil, ErrClosed
	}

	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(cfg.MemoryLimitMiB * 16) // 64 KiB pages
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	defer func() {
		if err != nil {
			_ = rt.Close(context.Background())
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	compiled, err := rt.CompileModule(ctx, bin)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotWasm, err)
	}
	exports := compiled.ExportedFunctions()
	if err := checkExport(exports, exportABIVersion, nil, []api.ValueType{api.ValueTypeI32}); err != nil {
		return nil, err
	}

	m := &Module{
		cfg:      cfg,
		engine:   e,
		logger:   e.logger.With("policy", cfg.Name),
		rt:       rt,
		compiled: compiled,
		tokens:   make(chan struct{}, cfg.PoolSize),
		idle:     make(chan *guest, cfg.PoolSize),
	}
	g, err := m.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.close()
		}
	}()

	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	res, err := g.mod.ExportedFunction(exportABIVersion).Call(sctx)
	if err != nil {
		return nil, classify(ctx, err, startTimeout)
	}
	if v := int32(res[0]); v != ABIVersion {
		return nil, fmt.Errorf("%w: module speaks ABI %d, this host speaks %d", ErrABIVersion, v, ABIVersion)
	}

	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	for _, x := range []struct {
		name            string
		params, results []api.ValueType
	}{
		{exportAlloc, []api.ValueType{i32}, []api.ValueType{i32}},
		{exportInfo, nil, []api.ValueType{i64}},
		{exportInit, []api.ValueType{i32, i32}, []api.ValueType{i64}},
		{cfg.Hook.export(), []api.ValueType{i32, i32}, []api.ValueType{i64}},
	} {
		if err := checkExport(exports, x.name, x.params, x.results); err != nil {
			return nil, err
		}
	}
	g.bind(cfg.Hook)

	raw, err := g.callPacked(ctx, sctx, startTimeout, g.mod.ExportedFunction(exportInfo))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", exportInfo, err)
	}
	if err := json.Unmarshal(raw, &m.info); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", exportInfo, ErrBadResponse, err)
	}
	if !slices.Contains(m.info.Hooks, cfg.Hook) {
		return nil, fmt.Errorf("%w: module declares hooks %v, not %q", ErrMissingExport, m.info.Hooks, cfg.Hook)
	}
	if !json.Valid(cfg.Settings) || !bytes.HasPrefix(bytes.TrimSpace(cfg.Settings), []byte("{")) {
		return nil, &SettingsError{Reason: "settings must be a JSON object"}
	}
	if err := g.init(ctx, cfg.Settings, cfg.Timeout); err != nil {
		return nil, err
	}

	m.idle <- g
	if !e.track(m) {
		return nil, ErrClosed
	}
	return m, nil
}

// checkExport reports a missing or mistyped export.
func checkExport(exports map[string]api.FunctionDefinition, name string, params, results []api.ValueType) error {
	def, ok := exports[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrMissingExport, name)
	}
	if !slices.Equal(def.ParamTypes(), params) || !slices.Equal(def.ResultTypes(), results) {
		return fmt.Errorf("%w: %s has signature %s, want %s", ErrMissingExport, name,
			signature(def.ParamTypes(), def.ResultTypes()), signature(params, results))
	}
	return nil
}

func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ",") + ")"
	}
	return names(params) + "->" + names(results)
}

// Info returns what the module said about itself at load time.
func (m *Module) Info() Info { return m.info }

// Validate asks the policy whether a status change may be written.
//
// On failure it returns an error (wrapping ErrTrap, ErrTimeout,
// ErrBadResponse, ErrGuest, ErrClosed or the caller's context error) and
// the fallback Verdict, whose Reason says the policy failed. A Module
// loaded for another hook returns ErrConfig.
func (m *Module) Validate(ctx context.Context, req ValidateRequest) (Verdict, error) {
	if m.cfg.Hook != HookValidate {
		return m.validateFallback(ErrConfig), fmt.Errorf("policy %q: %w: loaded for %s, not validate", m.cfg.Name, ErrConfig, m.cfg.Hook)
	}
	body, err := json.Marshal(req.wire())
	if err != nil {
		return m.validateFallback(err), fmt.Errorf("policy %q: validate: encode request: %w", m.cfg.Name, err)
	}
	var v Verdict
	err = m.call(ctx, body, func(b []byte) (err error) {
		v, err = parseVerdict(b)
		return err
	})
	if err != nil {
		return m.validateFallback(err), fmt.Errorf("policy %q: validate: %w", m.cfg.Name, err)
	}
	return v, nil
}

func (m *Module) validateFallback(err error) Verdict {
	return Verdict{
		Allow:  m.cfg.Fallback == FallbackAllow,
		Reason: fmt.Sprintf("policy %q failed (fallback %s): %v", m.cfg.Name, m.cfg.Fallback, err),
	}
}

// Reconcile asks the policy what to do about a disagreement between the
// record and the hypervisor. Failures are reported like Validate's, with
// the fallback Decision (flag or leave).
func (m *Module) Reconcile(ctx context.Context, req ReconcileRequest) (Decision, error) {
	if m.cfg.Hook != HookReconcile {
		return m.reconcileFallback(ErrConfig), fmt.Errorf("policy %q: %w: loaded for %s, not reconcile", m.cfg.Name, ErrConfig, m.cfg.Hook)
	}
	body, err := json.Marshal(req.wire())
	if err != nil {
		return m.reconcileFallback(err), fmt.Errorf("policy %q: reconcile: encode request: %w", m.cfg.Name, err)
	}
	var d Decision
	err = m.call(ctx, body, func(b []byte) (err error) {
		d, err = parseDecision(b)
		return err
	})
	if err != nil {
		return m.reconcileFallback(err), fmt.Errorf("policy %q: reconcile: %w", m.cfg.Name, err)
	}
	return d, nil
}

func (m *Module) reconcileFallback(err error) Decision {
	return Decision{
		Kind:   DecisionKind(m.cfg.Fallback),
		Reason: fmt.Sprintf("policy %q failed (fallback %s): %v", m.cfg.Name, m.cfg.Fallback, err),
	}
}

// call runs the hook on a pooled instance and hands the response to parse.
// The instance goes back to the pool only if the call and parse succeeded,
// or the guest itself reported a failure (ErrGuest: it recovered and is
// still sound); anything else may have left it broken.
func (m *Module) call(ctx context.Context, req []byte, parse func([]byte) error) error {
	g, err := m.acquire(ctx)
	if err != nil {
		return err
	}
	resp, err := g.call(ctx, req, m.cfg.Timeout)
	if err == nil {
		err = parse(resp)
	}
	m.release(g, err == nil || errors.Is(err, ErrGuest))
	return err
}

// acquire takes a call slot, then a warm instance or a new one.
func (m *Module) acquire(ctx context.Context) (*guest, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	select {
	case m.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for an instance: %w", ctx.Err())
	}
	if m.closed.Load() {
		<-m.tokens
		return nil, ErrClosed
	}
	select {
	case g := <-m.idle:
		return g, nil
	default:
	}
	g, err := m.instantiate(ctx)
	if err == nil {
		g.bind(m.cfg.Hook)
		err = g.init(ctx, m.cfg.Settings, m.cfg.Timeout)
		if err != nil {
			g.close()
		}
	}
	if err != nil {
		<-m.tokens
		return nil, err
	}
	return g, nil
}

// release returns g to the pool if keep and there is room, else closes it,
// and frees the call slot.
func (m *Module) release(g *guest, keep bool) {
	if keep && !m.closed.Load() {
		select {
		case m.idle <- g:
			g = nil
		default:
		}
	}
	if g != nil {
		g.close()
	}
	<-m.tokens
}

// Close waits for calls in progress (each bounded by Config.Timeout), or
// until ctx is done, then closes every instance and the module's runtime.
// Later calls return ErrClosed with the fallback answer. Close is
// idempotent.
func (m *Module) Close(ctx context.Context) error {
	if m.closed.Swap(true) {
		return nil
	}
	m.engine.untrack(m)
	// Take every call slot: when we hold them all, no call is running.
	held := 0
wait:
	for ; held < cap(m.tokens); held++ {
		select {
		case m.tokens <- struct{}{}:
		case <-ctx.Done():
			break wait
		}
	}
	for {
		select {
		case g := <-m.idle:
			g.close()
			continue
		default:
		}
		break
	}
	err := m.rt.Close(ctx)
	for ; held > 0; held-- {
		<-m.tokens
	}
	return err
}

// guest is one instance of the module, used by one call at a time.
type guest struct {
	mod            api.Module
	alloc, hook    api.Function
	stdout, stderr *logWriter
}

// instantiate starts a fresh instance: no filesystem, no network, no
// args or environment, a fake clock, output captured into the logger.
func (m *Module) instantiate(ctx context.Context) (*guest, error) {
	g := &guest{
		stdout: &logWriter{logger: m.logger, level: slog.LevelInfo, stream: "stdout"},
		stderr: &logWriter{logger: m.logger, level: slog.LevelWarn, stream: "stderr"},
	}
	mc := wazero.NewModuleConfig().
		WithName(""). // anonymous, so the same module can be instantiated many times
		WithStartFunctions("_initialize").
		WithStdout(g.stdout).
		WithStderr(g.stderr)
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	mod, err := m.rt.InstantiateModule(sctx, m.compiled, mc)
	if err != nil {
		g.stdout.flush()
		g.stderr.flush()
		return nil, fmt.Errorf("instantiate: %w", classify(ctx, err, startTimeout))
	}
	g.mod = mod
	return g, nil
}

// bind looks up the exports a call needs (their presence was checked at
// load time).
func (g *guest) bind(h Hook) {
	g.alloc = g.mod.ExportedFunction(exportAlloc)
	g.hook = g.mod.ExportedFunction(h.export())
}

// init passes the settings to lucid_init.
func (g *guest) init(ctx context.Context, settings []byte, timeout time.Duration) error {
	raw, err := g.callWith(ctx, timeout, g.mod.ExportedFunction(exportInit), settings)
	if err != nil {
		return fmt.Errorf("%s: %w", exportInit, err)
	}
	var w initWire
	if err := json.Unmarshal(raw, &w); err != nil || w.OK == nil {
		return fmt.Errorf("%s: %w: %q", exportInit, ErrBadResponse, raw)
	}
	if !*w.OK {
		reason := w.Error
		if reason == "" {
			reason = "the policy gave no reason"
		}
		return &SettingsError{Reason: reason}
	}
	return nil
}

// call runs the bound hook on req.
func (g *guest) call(ctx context.Context, req []byte, timeout time.Duration) ([]byte, error) {
	g.stderr.lastFatal() // forget what an earlier, survived call said
	return g.callWith(ctx, timeout, g.hook, req)
}

// callWith copies in into a buffer from lucid_alloc and calls fn(ptr, len)
// with the time budget timeout.
func (g *guest) callWith(ctx context.Context, timeout time.Duration, fn api.Function, in []byte) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := g.alloc.Call(cctx, uint64(len(in)))
	if err != nil {
		return nil, g.explain(classify(ctx, err, timeout))
	}
	ptr := uint32(res[0])
	if !g.mod.Memory().Write(ptr, in) {
		return nil, fmt.Errorf("%w: lucid_alloc(%d) returned %#x, outside memory", ErrBadResponse, len(in), ptr)
	}
	return g.callPacked(ctx, cctx, timeout, fn, uint64(ptr), uint64(len(in)))
}

// callPacked calls fn under cctx (ctx plus the time budget) and copies out
// the ptr<<32|len response it returns.
func (g *guest) callPacked(ctx, cctx context.Context, timeout time.Duration, fn api.Function, params ...uint64) ([]byte, error) {
	res, err := fn.Call(cctx, params...)
	if err != nil {
		return nil, g.explain(classify(ctx, err, timeout))
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	if n > maxResponse {
		return nil, fmt.Errorf("%w: response of %d bytes exceeds %d", ErrBadResponse, n, maxResponse)
	}
	b, ok := g.mod.Memory().Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("%w: response %#x+%d outside memory", ErrBadResponse, ptr, n)
	}
	return bytes.Clone(b), nil
}

// explain adds to a trap what the guest said on stderr just before it,
// and marks an out-of-memory death with ErrMemory.
func (g *guest) explain(err error) error {
	if !errors.Is(err, ErrTrap) {
		return err
	}
	said := g.stderr.lastFatal()
	switch {
	case said == "":
		return err
	case strings.Contains(said, "out of memory"):
		return fmt.Errorf("%w (%w: the guest said %q)", err, ErrMemory, said)
	default:
		return fmt.Errorf("%w (the guest said %q)", err, said)
	}
}

// close ends the instance and flushes its captured output.
func (g *guest) close() {
	_ = g.mod.Close(context.Background())
	g.stdout.flush()
	g.stderr.flush()
}

// classify turns a wazero call error into one wrapping our sentinels. ctx
// is the caller's context: if it ended, its error is wrapped too, so the
// caller can tell its own cancellation from the policy's timeout.
func classify(ctx context.Context, err error, timeout time.Duration) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
			}
			return fmt.Errorf("%w: no answer within %v", ErrTimeout, timeout)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("%w: call canceled: %w", ErrTimeout, context.Canceled)
		default:
			return fmt.Errorf("%w: policy exited with code %d", ErrTrap, exit.ExitCode())
		}
	}
	msg, _, _ := strings.Cut(err.Error(), "\n") // drop the wasm stack trace
	return fmt.Errorf("%w: %s", ErrTrap, msg)
}
