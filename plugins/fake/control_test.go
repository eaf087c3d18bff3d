package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// ctl runs the ctl command in process and returns its exit status and
// output.
func ctl(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := runCtl(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestControl drives the fake behind Lucid's back with the ctl command,
// checking the exact output, the state and the events of every step.
func TestControl(t *testing.T) {
	ctx := context.Background()
	sock := filepath.Join(t.TempDir(), "fake.sock")
	f := configured(t, `{"control_socket": "`+sock+`"}`)
	evCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := f.Events(evCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Spawn(ctx, driver.Spec{ID: "web", Flavor: small, Image: cirros}); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		args      []string
		wantCode  int
		wantOut   string // exact
		wantErr   string // substring of stderr; "" = empty
		wantEvent *driver.Event
	}{
		{args: []string{"list"}, wantOut: "ID   POWER    FLAVOR    IMAGE   NOTES\nweb  running  m1.small  cirros  -\n"},
		{args: []string{"power", "web", "crashed"}, wantEvent: &driver.Event{Kind: driver.EventPower, ID: "web", Power: driver.PowerCrashed}},
		{args: []string{"add", "--power", "paused", "stray"}, wantEvent: &driver.Event{Kind: driver.EventAppeared, ID: "stray", Power: driver.PowerPaused}},
		{args: []string{"add", "other"}, wantEvent: &driver.Event{Kind: driver.EventAppeared, ID: "other", Power: driver.PowerRunning}},
		{args: []string{"list"}, wantOut: "ID     POWER    FLAVOR    IMAGE   NOTES\nother  running  -         -       unmanaged\nstray  paused   -         -       unmanaged\nweb    crashed  m1.small  cirros  -\n"},
		{args: []string{"vanish", "other"}, wantEvent: &driver.Event{Kind: driver.EventVanished, ID: "other", Power: driver.PowerNoState}},
		{args: []string{"power", "web", "running"}, wantEvent: &driver.Event{Kind: driver.EventPower, ID: "web", Power: driver.PowerRunning}},
		// Refused requests: exit 1, a message naming the problem, no event.
		{args: []string{"power", "web", "on"}, wantCode: 1, wantErr: `PUT /vms/web/power: power "on", want one of running, shutdown, crashed, paused`},
		{args: []string{"power", "nope", "running"}, wantCode: 1, wantErr: "PUT /vms/nope/power: fake: instance nope: instance not found"},
		{args: []string{"vanish", "other"}, wantCode: 1, wantErr: "DELETE /vms/other: fake: instance other: instance not found"},
		{args: []string{"add", "web"}, wantCode: 1, wantErr: "POST /vms: fake: instance web: exists already"},
		// Bad command lines: exit 2 and the usage.
		{args: []string{"list"}[:0], wantCode: 2, wantErr: "--socket is required"},
		{args: []string{"jump"}, wantCode: 2, wantErr: `unknown command "jump"`},
		{args: []string{"power", "web"}, wantCode: 2, wantErr: "power needs ID and STATE"},
		{args: []string{"add"}, wantCode: 2, wantErr: "add needs one ID"},
	}
	for _, s := range steps {
		args := s.args
		if len(args) > 0 {
			args = append([]string{"--socket", sock}, args...)
		}
		code, out, errOut := ctl(args...)
		if code != s.wantCode || out != s.wantOut || (s.wantErr == "") != (errOut == "") || !strings.Contains(errOut, s.wantErr) {
			t.Fatalf("ctl %q = %d\nstdout %q\nstderr %q\nwant %d, stdout %q, stderr containing %q", args, code, out, errOut, s.wantCode, s.wantOut, s.wantErr)
		}
		if s.wantEvent == nil {
			select {
			case ev := <-events:
				t.Fatalf("ctl %q sent %+v, want no event", args, ev)
			default:
			}
			continue
		}
		select {
		case ev := <-events:
			if ev.Kind != s.wantEvent.Kind || ev.ID != s.wantEvent.ID || ev.Power != s.wantEvent.Power || ev.At.IsZero() {
				t.Fatalf("ctl %q sent %+v, want %+v with a time", args, ev, *s.wantEvent)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ctl %q sent no event, want %+v", args, *s.wantEvent)
		}
	}

	// Driver methods that change the power state send events too; Spawn
	// and Destroy do not.
	if err := f.PowerOff(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Kind != driver.EventPower || ev.ID != "web" || ev.Power != driver.PowerShutdown {
		t.Errorf("after PowerOff: event %+v, want power web shutdown", ev)
	}
	if err := f.Destroy(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		t.Errorf("Destroy sent %+v, want no event", ev)
	default:
	}
}

func TestControlSocketErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := newFake(io.Discard).Configure(context.Background(), []byte(`{"control_socket": "`+file+`"}`))
	if err == nil || !strings.Contains(err.Error(), "control_socket: "+file+" exists and is not a socket") {
		t.Errorf("Configure with a regular file as control_socket: err = %v", err)
	}
	err = newFake(io.Discard).Configure(context.Background(), []byte(`{"control_socket": "`+filepath.Join(dir, "no", "such", "dir", "s")+`"}`))
	if err == nil || !strings.Contains(err.Error(), "control_socket: listen unix") {
		t.Errorf("Configure with an unusable control_socket: err = %v", err)
	}
	code, _, errOut := ctl("--socket", filepath.Join(dir, "absent.sock"), "list")
	if code != 1 || !strings.Contains(errOut, "absent.sock") || !strings.Contains(errOut, "is control_socket set") {
		t.Errorf("ctl list against no server = %d, %q", code, errOut)
	}
}

// TestControlSurvivesReconfigure: a second Configure with the same socket
// keeps serving; a stale socket file from a dead process is replaced.
func TestControlSurvivesReconfigure(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fake.sock")
	cfg := `{"control_socket": "` + sock + `"}`
	first := newFake(io.Discard)
	if err := first.Configure(context.Background(), []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	if err := first.Configure(context.Background(), []byte(cfg)); err != nil {
		t.Fatalf("second Configure with the same socket: %v", err)
	}
	if code, _, errOut := ctl("--socket", sock, "add", "x"); code != 0 {
		t.Fatalf("ctl add after reconfigure = %d, %s", code, errOut)
	}
	// A restarted process finds the old one's socket file.
	second := configured(t, cfg)
	if code, out, errOut := ctl("--socket", sock, "list"); code != 0 || strings.Contains(out, "x") {
		t.Fatalf("ctl list against the new process = %d, %q, %s; want its own empty list", code, out, errOut)
	}
	first.Close()
	_ = second
}

// ctl env prints the plugin process's environment exactly (here the
// test's own, as the fake runs in process), sorted.
func TestControlEnv(t *testing.T) {
	t.Setenv("LUCID_FAKE_ENV_PROBE", "a=b c")
	sock := filepath.Join(t.TempDir(), "fake.sock")
	configured(t, `{"control_socket": "`+sock+`"}`)
	env := os.Environ()
	slices.Sort(env)
	want := strings.Join(env, "\n") + "\n"
	code, out, errOut := ctl("--socket", sock, "env")
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("ctl env = %d\nstdout %q\nstderr %q\nwant stdout %q", code, out, errOut, want)
	}
	if !strings.Contains(out, "\nLUCID_FAKE_ENV_PROBE=a=b c\n") {
		t.Fatalf("ctl env lacks the probe variable:\n%s", out)
	}
	if code, _, errOut := ctl("--socket", sock, "env", "x"); code != 2 || !strings.Contains(errOut, "env takes no arguments") {
		t.Fatalf("ctl env x = %d %q, want 2 and the usage", code, errOut)
	}
}
