package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout        = 100 * time.Millisecond
	DefaultMemoryLimitMiB = 64
	// DefaultMaxCalls recycles an instance after 100,000 calls: at ~6 ms
	// per fresh Go instance that costs well under 0.1 us per call, and it
	// bounds what a slow leak in any guest can accumulate.
	DefaultMaxCalls = 100_000
	// DefaultLogLinesPerSecond is the sustained rate of guest output lines
	// a module may log; see Config.LogLinesPerSecond.
	DefaultLogLinesPerSecond = 20
)

// logBurstSeconds is how many seconds' worth of lines the log budget holds
// when full: 100 lines at the default rate, enough for a Go panic's whole
// trace or a policy's start-up messages.
const logBurstSeconds = 5

// startTimeout bounds what starting an instance runs once: instantiation
// (_initialize, which runs the guest's init functions), lucid_policy_info
// at load time and lucid_init (settings parsing, often with encoding/json,
// slow in a guest). It is generous because a Go guest's runtime start is
// ~6 ms but a slow machine under the race detector is much slower, and it
// only guards against a guest that never finishes starting.
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
	// NoVerdictCache asks a deterministic validate policy every time
	// instead of keeping its verdicts (tests compare the two).
	NoVerdictCache bool
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
	// MaxCalls recycles an instance after this many calls: it is closed
	// once its last call has returned, and the next call gets a fresh one,
	// so recycling never fails a call. Zero means DefaultMaxCalls.
	MaxCalls int
	// MaxMemoryMiB recycles an instance whose linear memory is above it
	// after a call, the same way. Linear memory never shrinks, so this
	// catches a guest that leaks or once needed much more than usual
	// before it reaches MemoryLimitMiB and fails a call. Zero means half
	// of MemoryLimitMiB; more than MemoryLimitMiB is an error.
	MaxMemoryMiB uint32
	// LogLinesPerSecond limits the lines of stdout and stderr all the
	// module's instances may log together: a token bucket refilled at
	// this rate and holding up to 5 seconds' worth. Lines over the budget
	// are dropped and counted (Stats.LogLinesDropped), and a warning
	// "dropped N lines" is logged when output resumes, at the end of a
	// call (at most every 10 s) and at Close. Zero means
	// DefaultLogLinesPerSecond; a negative value means no limit.
	LogLinesPerSecond int
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
	switch {
	case c.MaxCalls < 0:
		return c, fmt.Errorf("%w: max calls %d is negative", ErrConfig, c.MaxCalls)
	case c.MaxCalls == 0:
		c.MaxCalls = DefaultMaxCalls
	}
	switch {
	case c.MaxMemoryMiB > c.MemoryLimitMiB:
		return c, fmt.Errorf("%w: max memory %d MiB is above the memory limit of %d MiB", ErrConfig, c.MaxMemoryMiB, c.MemoryLimitMiB)
	case c.MaxMemoryMiB == 0:
		c.MaxMemoryMiB = max(c.MemoryLimitMiB/2, 1)
	}
	if c.LogLinesPerSecond == 0 {
		c.LogLinesPerSecond = DefaultLogLinesPerSecond
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
// a fresh one. Instances are also retired by budget (Config.MaxCalls,
// Config.MaxMemoryMiB) between calls. A Module is safe for concurrent use;
// Close it when done.
type Module struct {
	cfg    Config
	info   Info
	digest string // hex sha256 of the .wasm
	engine *Engine
	logger *slog.Logger
	logs   *logLimiter

	rt       wazero.Runtime
	compiled wazero.CompiledModule

	// tokens holds one entry per call in progress (cap PoolSize); idle
	// holds warm instances (cap PoolSize). See RATIONALE.md.
	tokens chan struct{}
	idle   chan *guest
	closed atomic.Bool

	stats counters
	// verdicts keeps a deterministic validate module's answers (nil: ask
	// every time); see verdicts.go.
	verdicts *verdicts
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
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	cache, err := e.openCache(ctx, digest)
	if err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(cfg.MemoryLimitMiB * 16) // 64 KiB pages
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	defer func() {
		if err != nil {
			_ = rt.Close(context.Background())
			e.releaseCache(context.Background(), digest)
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

	logger := e.logger.With("policy", cfg.Name)
	m := &Module{
		cfg:      cfg,
		digest:   digest,
		engine:   e,
		logger:   logger,
		logs:     newLogLimiter(logger, cfg.LogLinesPerSecond),
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
	if cfg.Hook == HookValidate && !cfg.NoVerdictCache {
		var why string
		if m.verdicts, why = newVerdicts(m.info); why != "" {
			m.logger.Warn("policy verdicts are not kept", "reason", why)
		}
	}
	if !json.Valid(cfg.Settings) || !bytes.HasPrefix(bytes.TrimSpace(cfg.Settings), []byte("{")) {
		return nil, &SettingsError{Reason: "settings must be a JSON object"}
	}
	if err := g.init(ctx, cfg.Settings, startTimeout); err != nil {
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

// Digest returns the first 12 hex digits of the sha256 of the .wasm file,
// so that a record of a policy's decision can name exactly which build
// made it (with Info's name and version).
func (m *Module) Digest() string { return m.digest[:12] }

// Validate asks the policy whether a status change may be written.
//
// On failure it returns an error (wrapping ErrTrap, ErrTimeout,
// ErrBadResponse, ErrGuest, ErrClosed or the caller's context error) and
// the fallback Verdict, whose Reason says the policy failed. A Module
// loaded for another hook returns ErrConfig.
func (m *Module) Validate(ctx context.Context, req ValidateRequest) (Verdict, error) {
	m.stats.calls.Add(1)
	if m.cfg.Hook != HookValidate {
		m.stats.fail(ErrConfig)
		return m.validateFallback(ErrConfig), fmt.Errorf("policy %q: %w: loaded for %s, not validate", m.cfg.Name, ErrConfig, m.cfg.Hook)
	}
	var key []byte
	if m.verdicts != nil {
		var buf [192]byte
		key = m.verdicts.key(buf[:0], req)
		if v, ok := m.verdicts.get(key); ok {
			return v, nil
		}
	}
	body, err := json.Marshal(req.wire())
	if err != nil {
		err = fmt.Errorf("%w: encode: %w", ErrRequest, err)
		m.stats.fail(err)
		return m.validateFallback(err), fmt.Errorf("policy %q: validate: %w", m.cfg.Name, err)
	}
	var v Verdict
	err = m.call(ctx, body, func(b []byte) (err error) {
		v, err = parseVerdict(b)
		return err
	})
	if err != nil {
		return m.validateFallback(err), fmt.Errorf("policy %q: validate: %w", m.cfg.Name, err)
	}
	if key != nil {
		m.verdicts.put(string(key), v)
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
// record and the hypervisor. A request that does not fit its case is
// refused before the policy sees it (ErrRequest). A decision its case does
// not allow (see ReconcileCase and the Decision kinds), a correction to a
// status that is not settled, a rollback without an origin or an adoption
// the node cannot make is ErrBadResponse. Failures are reported like
// Validate's, with the fallback Decision (flag or leave).
func (m *Module) Reconcile(ctx context.Context, req ReconcileRequest) (Decision, error) {
	m.stats.calls.Add(1)
	if m.cfg.Hook != HookReconcile {
		m.stats.fail(ErrConfig)
		return m.reconcileFallback(ErrConfig), fmt.Errorf("policy %q: %w: loaded for %s, not reconcile", m.cfg.Name, ErrConfig, m.cfg.Hook)
	}
	body, err := json.Marshal(req.wire())
	if err == nil {
		err = req.check()
	} else {
		err = fmt.Errorf("%w: encode: %w", ErrRequest, err)
	}
	if err != nil {
		m.stats.fail(err)
		return m.reconcileFallback(err), fmt.Errorf("policy %q: reconcile: %w", m.cfg.Name, err)
	}
	var d Decision
	err = m.call(ctx, body, func(b []byte) (err error) {
		d, err = parseDecision(b, req)
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
// still sound), and it is within its budget; anything else may have left
// it broken. Every failure is counted in the Module's stats.
func (m *Module) call(ctx context.Context, req []byte, parse func([]byte) error) error {
	g, err := m.acquire(ctx)
	if err != nil {
		m.stats.fail(err)
		return err
	}
	resp, err := g.call(ctx, req, m.cfg.Timeout)
	if err == nil {
		err = parse(resp)
	}
	m.release(g, err)
	m.logs.summarize(false)
	if err != nil {
		m.stats.fail(err)
	}
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
		err = g.init(ctx, m.cfg.Settings, startTimeout)
		if err != nil {
			m.stats.discarded.Add(1)
			g.close()
		}
	}
	if err != nil {
		<-m.tokens
		return nil, err
	}
	return g, nil
}

// release ends g's call, whose outcome was err: g goes back to the pool if
// it is sound, within budget and there is room, else it is closed. Then
// the call slot is freed.
func (m *Module) release(g *guest, err error) {
	g.calls++
	keep := err == nil || errors.Is(err, ErrGuest)
	if !keep {
		m.stats.discarded.Add(1)
	} else if m.spent(g) {
		keep = false
	}
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

// spent reports whether g has used up its budget of calls or memory, and
// counts the recycling.
func (m *Module) spent(g *guest) bool {
	if g.calls >= m.cfg.MaxCalls {
		m.stats.recycledCalls.Add(1)
		m.logger.Debug("policy instance recycled", "calls", g.calls)
		return true
	}
	if size := uint64(g.mod.Memory().Size()); size > uint64(m.cfg.MaxMemoryMiB)<<20 {
		m.stats.recycledMemory.Add(1)
		m.logger.Info("policy instance recycled: memory above max_memory",
			"memory_mib", float64(size)/(1<<20), "max_memory_mib", m.cfg.MaxMemoryMiB, "calls", g.calls)
		return true
	}
	return false
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
	m.engine.releaseCache(ctx, m.digest)
	m.logs.summarize(true)
	for ; held > 0; held-- {
		<-m.tokens
	}
	return err
}
