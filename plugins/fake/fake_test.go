package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
	"github.com/lucid-project/lucid/sdk/driver/drivertest"
)

// The fake is also run through the real plugin host in core/driver; this
// in-process run is the fast check, and covers what a subprocess cannot.

func configured(t *testing.T, cfg string) *fake {
	t.Helper()
	f := newFake(io.Discard)
	if err := f.Configure(context.Background(), []byte(cfg)); err != nil {
		t.Fatalf("Configure(%s): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, configured(t, `{}`))
}

func TestConformanceWithStateFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	drivertest.Run(t, configured(t, `{"state_file": "`+state+`", "boot_delay": "1ms"}`))
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		in      string
		want    config
		wantErr string // substring; "" = no error
	}{
		{in: ``, want: config{}},
		{in: `{}`, want: config{}},
		{in: `{"boot_delay": "200ms", "destroy_delay": "1s"}`, want: config{bootDelay: 200 * time.Millisecond, destroyDelay: time.Second}},
		{in: `{"fail_spawn": true}`, want: config{failSpawn: "injected spawn failure"}},
		{in: `{"fail_spawn": false}`, want: config{}},
		{in: `{"fail_spawn": "no capacity", "fail_destroy": "stuck"}`, want: config{failSpawn: "no capacity", failDestroy: "stuck"}},
		{in: `{"crash_on": "spawn"}`, want: config{crashOn: "Spawn"}},
		{in: `{"state_file": "/tmp/x.json"}`, want: config{stateFile: "/tmp/x.json"}},
		{in: `{"control_socket": "/tmp/x.sock"}`, want: config{controlSocket: "/tmp/x.sock"}},
		{in: `{"rebuild_delay": "2s", "resize_delay": "3ms"}`, want: config{rebuildDelay: 2 * time.Second, resizeDelay: 3 * time.Millisecond}},
		{in: `{"fail_rebuild": true, "fail_confirm_resize": "no", "fail_revert_resize": true}`, want: config{failRebuild: "injected rebuild failure", failConfirmResize: "no", failRevertResize: "injected revert resize failure"}},
		{in: `{"fail_resize": "prepare"}`, want: config{failResize: []driver.ResizeStep{driver.ResizePrepare}}},
		{in: `{"fail_resize": ["Finish", "queue", "finish"]}`, want: config{failResize: []driver.ResizeStep{driver.ResizeFinish, driver.ResizeQueue}}},
		{in: `{"fail_resize": []}`, want: config{}},
		{in: `{"crash_on": "revertresize"}`, want: config{crashOn: "RevertResize"}},
		{in: `{"fail_resize": "shrink"}`, wantErr: `fail_resize: unknown resize step "shrink", want queue, prepare, finish`},
		{in: `{"fail_resize": true}`, wantErr: `fail_resize: want a resize step or a list of them (queue, prepare, finish), got true`},
		{in: `{"resize_delay": "1 minute"}`, wantErr: `resize_delay: bad duration "1 minute"`},
		{in: `{"fail_rebuild": 1}`, wantErr: `fail_rebuild: want true, false or an error message`},
		{in: `{"control_socket": 1}`, wantErr: `control_socket: want a path string, got 1`},
		{in: `{"crash_on": "Events"}`, wantErr: `crash_on: unknown method "Events"`},
		{in: `{"bogus": 1}`, wantErr: `bogus: unknown key`},
		{in: `{"boot_delay": "soon"}`, wantErr: `boot_delay: bad duration "soon"`},
		{in: `{"boot_delay": 5}`, wantErr: `boot_delay: want a duration string`},
		{in: `{"destroy_delay": "-1s"}`, wantErr: `destroy_delay: negative duration "-1s"`},
		{in: `{"fail_spawn": 3}`, wantErr: `fail_spawn: want true, false or an error message`},
		{in: `{"crash_on": "Configure"}`, wantErr: `crash_on: unknown method "Configure"`},
		{in: `{"b": 1, "a": 2}`, wantErr: `a: unknown key; b: unknown key`},
		{in: `[1]`, wantErr: `not a JSON object`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseConfig([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, driver.ErrInvalidConfig) {
					t.Fatalf("parseConfig(%s) err = %v, want ErrInvalidConfig containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseConfig(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	f := configured(t, `{"fail_spawn": "no capacity", "fail_destroy": true}`)
	if err := f.Spawn(ctx, driver.Spec{ID: "a"}); err == nil || !strings.Contains(err.Error(), "no capacity") {
		t.Errorf("Spawn err = %v, want the injected message", err)
	}
	if _, err := f.Inspect(ctx, "a"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect after failed Spawn: err = %v, want ErrNotFound", err)
	}

	if err := f.Configure(ctx, []byte(`{"fail_destroy": true}`)); err != nil {
		t.Fatal(err)
	}
	if err := f.Spawn(ctx, driver.Spec{ID: "a"}); err != nil {
		t.Fatalf("Spawn after clearing fail_spawn: %v", err)
	}
	if err := f.Destroy(ctx, "a"); err == nil || !strings.Contains(err.Error(), "injected destroy failure") {
		t.Errorf("Destroy err = %v, want the injected failure", err)
	}
	if _, err := f.Inspect(ctx, "a"); err != nil {
		t.Errorf("Inspect after failed Destroy: %v, want the instance kept", err)
	}
}

func TestBootDelayRespectsCancel(t *testing.T) {
	f := configured(t, `{"boot_delay": "1h"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := f.Spawn(ctx, driver.Spec{ID: "slow"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Spawn err = %v, want DeadlineExceeded", err)
	}
	if _, err := f.Inspect(context.Background(), "slow"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect after an abandoned Spawn: err = %v, want ErrNotFound", err)
	}
}

func TestStateFileSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	cfg := `{"state_file": "` + filepath.Join(t.TempDir(), "state.json") + `"}`
	first := configured(t, cfg)
	if err := first.Spawn(ctx, driver.Spec{ID: "kept"}); err != nil {
		t.Fatal(err)
	}
	if err := first.PowerOff(ctx, "kept"); err != nil {
		t.Fatal(err)
	}

	second := configured(t, cfg) // a restarted plugin process
	got, err := second.Inspect(ctx, "kept")
	if err != nil || got != (driver.Instance{ID: "kept", Power: driver.PowerShutdown}) {
		t.Fatalf("Inspect after restart = %+v, %v; want kept/shutdown", got, err)
	}
}
