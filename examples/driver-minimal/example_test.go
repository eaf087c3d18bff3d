package main_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	host "github.com/lucid-project/lucid/core/driver"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/sdk/driver"
	"github.com/lucid-project/lucid/sdk/driver/drivertest"
)

// start builds the example (once per test binary) and launches it through
// the real plugin host, as `lucid serve` does for a driver block.
func start(t *testing.T, config string, logs *syncBuffer) (*host.Plugin, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return host.Start(ctx, host.Config{
		Name:      "minimal",
		Path:      testenv.Binary(t, "./examples/driver-minimal"),
		Config:    []byte(config),
		SocketDir: t.TempDir(),
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
}

// TestThroughHost runs the conformance suite across the plugin boundary,
// with the config an operator's `config { greeting = "..." }` becomes.
func TestThroughHost(t *testing.T) {
	logs := &syncBuffer{}
	p, err := start(t, `{"greeting":"hello from the test"}`, logs)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	drivertest.Run(t, p)

	// Spawn's stderr line reached the host's logger, tagged and levelled.
	testenv.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(logs.String(), `level=INFO msg="[INFO] hello from the test, drivertest-`)
	}, "no greeting in the host log:\n%s", logs)
	if !strings.Contains(logs.String(), "driver=minimal") {
		t.Errorf("host log lines are not tagged driver=minimal:\n%s", logs)
	}

	// A refused reconfiguration names the key and keeps the plugin usable.
	err = p.Configure(context.Background(), []byte(`{"greting":"typo"}`))
	if !errors.Is(err, driver.ErrInvalidConfig) || !strings.Contains(err.Error(), `unknown field "greting"`) {
		t.Errorf("Configure with an unknown key = %v, want ErrInvalidConfig naming greting", err)
	}
	if _, err := p.List(context.Background()); err != nil {
		t.Errorf("List after a refused Configure: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := p.List(context.Background()); !errors.Is(err, host.ErrClosed) {
		t.Errorf("List after Close = %v, want ErrClosed", err)
	}
}

// TestUnknownKeyRefusedAtStart is what an operator sees for a typo in the
// config block: Start fails, naming the key, and leaves nothing running.
func TestUnknownKeyRefusedAtStart(t *testing.T) {
	p, err := start(t, `{"colour":"blue"}`, &syncBuffer{})
	if err == nil {
		p.Close(context.Background())
		t.Fatal("Start with an unknown config key succeeded")
	}
	if !errors.Is(err, driver.ErrInvalidConfig) || !strings.Contains(err.Error(), `unknown field "colour"`) {
		t.Fatalf("Start error = %v, want ErrInvalidConfig naming colour", err)
	}
	t.Logf("operator sees: %v", err)
}

// syncBuffer collects log output from the host's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestOptionalIsOptional: a driver without the optional interfaces reports
// none of their capabilities through the host, and the host refuses their
// calls with ErrUnsupported.
func TestOptionalIsOptional(t *testing.T) {
	p, err := start(t, `{}`, &syncBuffer{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	if got, want := p.Capabilities(), []string{"power", "reboot"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Capabilities() = %q, want %q", got, want)
	}
	if err := p.Rebuild(context.Background(), "x", driver.Image{ID: "cirros"}); !errors.Is(err, driver.ErrUnsupported) {
		t.Errorf("Rebuild: err = %v, want ErrUnsupported", err)
	}
}
