package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// guest is one instance of the module, used by one call at a time.
type guest struct {
	mod            api.Module
	alloc, hook    api.Function
	stdout, stderr *logWriter
	calls          int // hook calls made on it
}

// instantiate starts a fresh instance: no filesystem, no network, no
// args or environment, a fake clock, output captured into the logger.
func (m *Module) instantiate(ctx context.Context) (*guest, error) {
	g := &guest{
		stdout: &logWriter{limit: m.logs, level: slog.LevelInfo, stream: "stdout"},
		stderr: &logWriter{limit: m.logs, level: slog.LevelWarn, stream: "stderr"},
	}
	mc := wazero.NewModuleConfig().
		WithName(""). // anonymous, so the same module can be instantiated many times
		WithStartFunctions("_initialize").
		WithStdout(g.stdout).
		WithStderr(g.stderr)
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	m.stats.instances.Add(1)
	mod, err := m.rt.InstantiateModule(sctx, m.compiled, mc)
	if err != nil {
		m.stats.discarded.Add(1)
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
