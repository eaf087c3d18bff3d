package policy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/policy"
	"github.com/lucid-project/lucid/internal/testenv"
)

// logBuffer is a concurrency-safe sink for the engine's logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEngine(t testing.TB) (*policy.Engine, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	e, err := policy.NewEngine(context.Background(), policy.EngineConfig{
		CacheDir: testenv.CacheDir(t), // shared by the run's test processes, never the user's
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e, logs
}

func load(t testing.TB, e *policy.Engine, cfg policy.Config) *policy.Module {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.Hook == "" {
		cfg.Hook = policy.HookValidate
	}
	if cfg.Path == "" {
		cfg.Path = policy.RawGuestWasm
	}
	m, err := e.Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

func req(name string) policy.ValidateRequest {
	return policy.ValidateRequest{
		Now:    time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Action: instance.ActionCreate, Cause: instance.CauseAPI,
		From: "", To: instance.StatusBuild,
		Instance: instance.State{ID: "i-1", Name: name, VMState: instance.Building},
	}
}

// wasmModule hand-assembles a module whose only export is
// lucid_abi_version returning version: the smallest foreign policy.
func wasmModule(version byte) []byte {
	name := "lucid_abi_version"
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 1, 5, 1, 0x60, 0, 1, 0x7f) // type: () -> i32
	b = append(b, 3, 2, 1, 0)                // function 0 has type 0
	b = append(b, 7, byte(len(name)+4), 1, byte(len(name)))
	b = append(b, name...)
	b = append(b, 0, 0)                                // export func 0
	b = append(b, 10, 6, 1, 4, 0, 0x41, version, 0x0b) // code: i32.const version
	return b
}

func TestLoadErrors(t *testing.T) {
	e, _ := newEngine(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		cfg     policy.Config
		want    error
		wantMsg string
	}{
		{"missing file", policy.Config{Path: filepath.Join(dir, "nope.wasm")}, fs.ErrNotExist, "nope.wasm"},
		{"text file", policy.Config{Path: write("text.wasm", []byte("hello, I am not wasm\n"))}, policy.ErrNotWasm, "magic"},
		{"truncated wasm", policy.Config{Path: write("trunc.wasm", []byte("\x00asm\x01\x00\x00\x00\x01\x05"))}, policy.ErrNotWasm, ""},
		{"abi version 2", policy.Config{Path: write("abi2.wasm", wasmModule(2))}, policy.ErrABIVersion, "module speaks ABI 2, this host speaks 1"},
		{"abi only", policy.Config{Path: write("abi1.wasm", wasmModule(1))}, policy.ErrMissingExport, "lucid_alloc"},
		{"settings rejected", policy.Config{Settings: []byte(`{"reject":"unknown setting \"colour\""}`)}, policy.ErrSettings, `unknown setting "colour"`},
		{"settings not an object", policy.Config{Settings: []byte(`[1]`)}, policy.ErrSettings, "JSON object"},
		{"unknown hook", policy.Config{Hook: "audit"}, policy.ErrConfig, `unknown hook "audit"`},
		{"bad fallback", policy.Config{Fallback: policy.FallbackFlag}, policy.ErrConfig, "deny, allow"},
		{"negative max calls", policy.Config{MaxCalls: -1}, policy.ErrConfig, "max calls -1 is negative"},
		{"max memory above the limit", policy.Config{MaxMemoryMiB: 65}, policy.ErrConfig, "max memory 65 MiB is above the memory limit of 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Name = "validate"
			if cfg.Hook == "" {
				cfg.Hook = policy.HookValidate
			}
			if cfg.Path == "" {
				cfg.Path = policy.RawGuestWasm
			}
			m, err := e.Load(context.Background(), cfg)
			if err == nil {
				m.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var le *policy.LoadError
			if !errors.As(err, &le) || le.Name != "validate" || le.Path != cfg.Path {
				t.Fatalf("err = %#v, want *LoadError naming the policy", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}

	t.Run("settings error is typed", func(t *testing.T) {
		_, err := e.Load(context.Background(), policy.Config{Name: "v", Hook: policy.HookValidate, Path: policy.RawGuestWasm,
			Settings: []byte(`{"reject":"colour is not a setting"}`)})
		var se *policy.SettingsError
		if !errors.As(err, &se) || se.Reason != "colour is not a setting" {
			t.Fatalf("err = %v, want *SettingsError with the policy's reason", err)
		}
	})
}

func TestInfo(t *testing.T) {
	e, _ := newEngine(t)
	m := load(t, e, policy.Config{})
	info := m.Info()
	if info.Name != "rawguest" || info.Version != "0.0.1" || len(info.Hooks) != 2 || string(info.SettingsSchema) != `{"type":"object"}` {
		t.Fatalf("Info() = %+v", info)
	}
}

func TestValidate(t *testing.T) {
	e, _ := newEngine(t)
	m := load(t, e, policy.Config{})
	tests := []struct {
		name string
		want policy.Verdict
	}{
		{"ok", policy.Verdict{Allow: true, Reason: "ok"}},
		{"deny", policy.Verdict{Allow: false, Reason: "no"}}, // unknown field in the response is ignored
		{"now", policy.Verdict{Allow: true, Reason: "2025-01-02T03:04:05.000000006Z"}},
	}
	for _, tt := range tests {
		got, err := m.Validate(context.Background(), req(tt.name))
		if err != nil || got != tt.want {
			t.Errorf("%s: Validate = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

// TestFailures checks that every way a guest can fail yields the right
// sentinel, the fallback verdict, and leaves the Module usable.
func TestFailures(t *testing.T) {
	e, logs := newEngine(t)
	m := load(t, e, policy.Config{Name: "validate", Timeout: time.Second, PoolSize: 1})
	// Out of memory has a module of its own: a low limit, so that it dies
	// after a few allocations, and a time limit far above what that takes
	// even under -race on a busy machine, so that it can only die of
	// memory (it once timed out at 1 s while other packages' tests ran).
	hungry := load(t, e, policy.Config{Name: "validate", Timeout: 30 * time.Second, MemoryLimitMiB: 16, PoolSize: 1})
	allow := load(t, e, policy.Config{Name: "lenient", Fallback: policy.FallbackAllow, PoolSize: 1})
	tests := []struct {
		name string
		m    *policy.Module
		want error
	}{
		{"panic", m, policy.ErrTrap},
		{"loop", m, policy.ErrTimeout},
		{"oom", hungry, policy.ErrMemory},
		{"exit", m, policy.ErrTrap},
		{"badjson", m, policy.ErrBadResponse},
		{"badptr", m, policy.ErrBadResponse},
		{"noallow", m, policy.ErrBadResponse},
		{"guesterr", m, policy.ErrGuest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.m.Validate(context.Background(), req(tt.name))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			t.Log(err)
			if v.Allow || !strings.Contains(v.Reason, `policy "validate" failed`) {
				t.Errorf("verdict = %+v, want the deny fallback saying the policy failed", v)
			}
			// The Module survives: the next call works.
			if v, err := tt.m.Validate(context.Background(), req("ok")); err != nil || !v.Allow {
				t.Fatalf("after %s: Validate = %+v, %v", tt.name, v, err)
			}
			if tt.name == "panic" || tt.name == "badjson" {
				if v, err := allow.Validate(context.Background(), req(tt.name)); err == nil || !v.Allow {
					t.Errorf("allow fallback: Validate = %+v, %v; want allow with an error", v, err)
				}
			}
		})
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("guest panic message not in the log:\n%s", logs.String())
	}
	// Each failure is counted under its kind, and every failure but the
	// guest's own report cost an instance.
	want := policy.Stats{Name: "validate", Hook: policy.HookValidate, Calls: 14, Instances: 7, Discarded: 6,
		Failures: policy.Failures{Trap: 2, Timeout: 1, BadResponse: 3, Guest: 1}}
	if got := m.Stats(); got != want {
		t.Errorf("Stats() =\n%+v, want\n%+v", got, want)
	}
	want = policy.Stats{Name: "validate", Hook: policy.HookValidate, Calls: 2, Instances: 2, Discarded: 1,
		Failures: policy.Failures{Memory: 1}}
	if got := hungry.Stats(); got != want {
		t.Errorf("out of memory: Stats() =\n%+v, want\n%+v", got, want)
	}
}

func TestCallerContext(t *testing.T) {
	e, _ := newEngine(t)
	m := load(t, e, policy.Config{Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := m.Validate(ctx, req("loop"))
	if !errors.Is(err, policy.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout and the caller's DeadlineExceeded", err)
	}
}

func TestOutputCaptured(t *testing.T) {
	e, logs := newEngine(t)
	m := load(t, e, policy.Config{Name: "chatty"})
	if _, err := m.Validate(context.Background(), req("print")); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{
		`level=INFO msg="hello on stdout" policy=chatty stream=stdout`,
		`level=WARN msg="hello on stderr" policy=chatty stream=stderr`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestReconcile(t *testing.T) {
	e, _ := newEngine(t)
	m := load(t, e, policy.Config{Name: "reconcile", Hook: policy.HookReconcile, Timeout: 10 * time.Second})
	rq := func(name string) policy.ReconcileRequest {
		return policy.ReconcileRequest{Case: policy.CasePowerMismatch, Node: "node-1",
			Instance: &instance.State{Name: name, VMState: instance.Active}, Status: instance.StatusActive,
			Observed: policy.Observation{Present: true, PowerState: instance.Shutdown}, Disagreeing: time.Minute}
	}
	tests := []struct {
		name string
		want policy.Decision
	}{
		{"ok", policy.Decision{Kind: policy.DecisionCorrect, Status: instance.StatusShutoff, Reason: "hypervisor says off"}},
		// A correction without a status gets the one the case implies.
		{"nostatus", policy.Decision{Kind: policy.DecisionCorrect, Status: instance.StatusShutoff}},
	}
	for _, tt := range tests {
		if d, err := m.Reconcile(context.Background(), rq(tt.name)); err != nil || d != tt.want {
			t.Errorf("%s: Reconcile = %+v, %v; want %+v", tt.name, d, err, tt.want)
		}
	}
	for _, name := range []string{"bogus", "panic"} {
		d, err := m.Reconcile(context.Background(), rq(name))
		if err == nil || d.Kind != policy.DecisionFlag {
			t.Errorf("%s: Reconcile = %+v, %v; want an error and the flag fallback", name, d, err)
		}
	}
	// A request that does not fit its case is not sent.
	bad := rq("ok")
	bad.Instance = nil
	d, err := m.Reconcile(context.Background(), bad)
	if !errors.Is(err, policy.ErrRequest) || d.Kind != policy.DecisionFlag || !strings.Contains(err.Error(), "case power_mismatch without an instance record") {
		t.Errorf("request without its record: Reconcile = %+v, %v; want ErrRequest and the flag fallback", d, err)
	}
	if _, err := m.Validate(context.Background(), req("ok")); !errors.Is(err, policy.ErrConfig) {
		t.Errorf("Validate on a reconcile module: err = %v, want ErrConfig", err)
	}
	want := policy.Stats{Name: "reconcile", Hook: policy.HookReconcile, Calls: 6, Instances: 2, Discarded: 2,
		Failures: policy.Failures{Trap: 1, BadResponse: 1, Refused: 2}}
	if got := m.Stats(); got != want {
		t.Errorf("Stats() =\n%+v, want\n%+v", got, want)
	}
}

// TestConcurrent runs good and failing calls from several goroutines; run
// it with -race.
func TestConcurrent(t *testing.T) {
	e, _ := newEngine(t)
	m := load(t, e, policy.Config{PoolSize: 3, Timeout: 500 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				name := "ok"
				if (w+i)%7 == 0 {
					name = "panic"
				}
				if w == 0 && i == 10 {
					name = "loop"
				}
				v, err := m.Validate(context.Background(), req(name))
				if ok := name == "ok"; ok != (err == nil) || ok != v.Allow {
					errs <- fmt.Errorf("%s: %+v, %v", name, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	e, _ := newEngine(t)
	m := load(t, e, policy.Config{})
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := m.Validate(context.Background(), req("ok"))
	if !errors.Is(err, policy.ErrClosed) || v.Allow {
		t.Fatalf("after Close: %+v, %v; want ErrClosed and deny", v, err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Engine.Close closes what is still open and refuses new loads.
	m2 := load(t, e, policy.Config{})
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Validate(context.Background(), req("ok")); !errors.Is(err, policy.ErrClosed) {
		t.Fatalf("module after Engine.Close: err = %v, want ErrClosed", err)
	}
	if _, err := e.Load(context.Background(), policy.Config{Name: "x", Hook: policy.HookValidate, Path: policy.RawGuestWasm}); !errors.Is(err, policy.ErrClosed) {
		t.Fatalf("Load after Engine.Close: err = %v, want ErrClosed", err)
	}
}
