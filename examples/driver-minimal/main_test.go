package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lucid-project/lucid/sdk/driver"
	"github.com/lucid-project/lucid/sdk/driver/drivertest"
)

// The in-process run: the conformance suite straight against the type,
// without a plugin process. example_test.go runs it through the host.

func TestConformance(t *testing.T) {
	h := newHypervisor(io.Discard)
	if err := h.Configure(context.Background(), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	drivertest.Run(t, h)
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		in           string
		wantGreeting string
		wantErr      string // "" = accepted
	}{
		{in: ``, wantGreeting: "hello"},
		{in: `{}`, wantGreeting: "hello"},
		{in: `{"greeting": "bonjour"}`, wantGreeting: "bonjour"},
		{in: `{"colour": "blue"}`, wantErr: `invalid driver config: json: unknown field "colour"`},
		{in: `{"greeting": 7}`, wantErr: `invalid driver config: json: cannot unmarshal number into Go struct field config.greeting of type string`},
		{in: `[1]`, wantErr: `invalid driver config: json: cannot unmarshal array into Go value of type main.config`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h := newHypervisor(io.Discard)
			h.greeting = "stale" // Configure must reset absent keys
			err := h.Configure(context.Background(), []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, driver.ErrInvalidConfig) {
					t.Fatalf("Configure(%s) = %v, want ErrInvalidConfig %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || h.greeting != tt.wantGreeting {
				t.Fatalf("Configure(%s) = %v, greeting %q; want nil, %q", tt.in, err, h.greeting, tt.wantGreeting)
			}
		})
	}
}

func TestSoftRebootNeedsRunning(t *testing.T) {
	ctx := context.Background()
	var log strings.Builder
	h := newHypervisor(&log)
	if err := h.Spawn(ctx, driver.Spec{ID: "i-1", Name: "web"}); err != nil {
		t.Fatal(err)
	}
	if got, want := log.String(), "[INFO] hello, web (i-1)\n"; got != want {
		t.Errorf("Spawn logged %q, want %q", got, want)
	}
	if err := h.PowerOff(ctx, "i-1"); err != nil {
		t.Fatal(err)
	}
	err := h.Reboot(ctx, "i-1", false)
	if want := "minimal: soft reboot of i-1: instance is shutdown, not running"; err == nil || err.Error() != want {
		t.Fatalf("soft Reboot of a shut down instance = %v, want %q", err, want)
	}
	if in, _ := h.Inspect(ctx, "i-1"); in.Power != driver.PowerShutdown {
		t.Errorf("after a refused soft Reboot, power = %q, want shutdown", in.Power)
	}
}
