package driver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// The test binary doubles as a host process for TestHostKilled, chosen by
// roleEnv; the other variables tell the host what to run and where.
const (
	roleEnv       = "LUCID_CORE_DRIVER_TEST_ROLE"
	hostPluginEnv = "LUCID_CORE_DRIVER_TEST_PLUGIN"
	hostParentEnv = "LUCID_CORE_DRIVER_TEST_SOCKET_PARENT"
)

// runHost is a host: it starts the plugin through Start in a socket dir
// from NewSocketDir, and a `sleep` through the same forker (a child that,
// unlike a plugin built with sdk/driver, does not watch its parent: only
// the parent-death signal can end it). Then it makes the Go runtime end
// threads (goroutines that return while locked to one), which must not
// kill either child, prints "<plugin pid> <sleep pid> <socket dir>" and
// waits to be killed.
func runHost() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "host:", err); return 1 }
	dir, err := NewSocketDir(os.Getenv(hostParentEnv))
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, Config{Name: "fake", Path: os.Getenv(hostPluginEnv), SocketDir: dir})
	if err != nil {
		return fail(err)
	}
	sleeper := exec.Command("sleep", "600")
	if err := p.fork.start(sleeper); err != nil {
		return fail(err)
	}
	for range 64 {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(done)
		}() // returns locked: the runtime ends its thread
		<-done
	}
	fmt.Printf("%d %d %s\n", p.pid(), sleeper.Process.Pid, dir)
	select {}
}

// alive reports whether pid is a process that has not exited; a zombie
// (exited, not yet reaped by its new parent) counts as gone.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')') // the state follows the name
	return i < 0 || i+2 >= len(stat) || (stat[i+2] != 'Z' && stat[i+2] != 'X')
}

// TestHostKilled: when the host is SIGKILLed, its plugin and any other
// child it forked die with it (the parent-death signal, which thread churn
// in the host must not fire early), and the next host's
// RemoveStaleSocketDirs removes the dead host's socket dir.
func TestHostKilled(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux only")
	}
	parent := t.TempDir()
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), roleEnv+"=host", hostPluginEnv+"="+fakePath, hostParentEnv+"="+parent)
	host.Stderr = os.Stderr
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Process.Kill(); host.Wait() }) // on an early failure
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the host printed nothing: %v", err)
	}
	var pluginPID, sleepPID int
	var sockDir string
	if _, err := fmt.Sscanf(line, "%d %d %s", &pluginPID, &sleepPID, &sockDir); err != nil {
		t.Fatalf("host printed %q: %v", line, err)
	}
	t.Cleanup(func() {
		syscall.Kill(pluginPID, syscall.SIGKILL)
		syscall.Kill(sleepPID, syscall.SIGKILL)
	})
	if !alive(pluginPID) || !alive(sleepPID) {
		t.Fatalf("after thread churn in the host: plugin alive %v, sleep alive %v; want both", alive(pluginPID), alive(sleepPID))
	}
	if removed, err := RemoveStaleSocketDirs(parent); err != nil || len(removed) != 0 {
		t.Fatalf("RemoveStaleSocketDirs with the host alive = %v, %v; want nothing removed", removed, err)
	}

	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	host.Wait() // reaped: a zombie host's pid would still count as alive
	eventually(t, 30*time.Second, func() error {
		if alive(pluginPID) || alive(sleepPID) {
			return fmt.Errorf("plugin alive %v, sleep alive %v after the host was killed", alive(pluginPID), alive(sleepPID))
		}
		return nil
	})
	removed, err := RemoveStaleSocketDirs(parent)
	if err != nil || len(removed) != 1 || removed[0] != sockDir {
		t.Fatalf("RemoveStaleSocketDirs = %v, %v; want [%s]", removed, err, sockDir)
	}
	if _, err := os.Stat(sockDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead host's socket dir is still there: %v", err)
	}
}

func TestRemoveStaleSocketDirs(t *testing.T) {
	// A pid that is certainly dead: a process that ran and was reaped.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(gone.Process.Pid)
	self := strconv.Itoa(os.Getpid())
	live := strconv.Itoa(os.Getppid())

	parent := t.TempDir()
	entries := []struct {
		name        string
		dir         bool
		wantRemoved bool
	}{
		{"lucid-plugins-" + dead + "-123", true, true},
		{"lucid-plugins-" + self + "-456", true, false},   // this host
		{"lucid-plugins-" + live + "-789", true, false},   // another live host
		{"lucid-plugins-" + dead + "-file", false, false}, // not a directory
		{"lucid-plugins-2847561923", true, false},         // the old, pid-less name
		{"lucid-plugins-" + dead + "-", true, false},      // no suffix
		{"lucid-plugins-0" + dead + "-abc", true, false},  // not a pid as NewSocketDir writes it
		{"other-" + dead + "-abc", true, false},           // someone else's
	}
	for _, e := range entries {
		path := filepath.Join(parent, e.name)
		if e.dir {
			if err := os.MkdirAll(filepath.Join(path, "plugin123"), 0o700); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveStaleSocketDirs(parent)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(parent, "lucid-plugins-"+dead+"-123")}
	if !slicesEqual(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, e := range entries {
		_, err := os.Lstat(filepath.Join(parent, e.name))
		if gotRemoved := errors.Is(err, os.ErrNotExist); gotRemoved != e.wantRemoved {
			t.Errorf("%s: removed %v, want %v", e.name, gotRemoved, e.wantRemoved)
		}
	}

	dir, err := NewSocketDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if base := filepath.Base(dir); !strings.HasPrefix(base, "lucid-plugins-"+self+"-") {
		t.Errorf("NewSocketDir made %s, want lucid-plugins-%s-*", base, self)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("NewSocketDir: %v, %v; want a 0700 directory", fi, err)
	}
	if _, err := RemoveStaleSocketDirs(filepath.Join(parent, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("RemoveStaleSocketDirs(missing dir) err = %v, want it to name the dir", err)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

// ctl runs the fake's ctl command against sock.
func ctl(t *testing.T, sock string, args ...string) {
	t.Helper()
	out, err := exec.Command(fakePath, append([]string{"ctl", "--socket", sock}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctl %q: %v\n%s", args, err, out)
	}
}

// next returns the next event from ch, failing after a generous wait.
func next(t *testing.T, ch <-chan driver.Event) driver.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the subscription was closed")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return driver.Event{}
}

// TestSubscribeAcrossRestart: a subscriber sees changes made behind
// Lucid's back, then EventRestarted when the plugin is SIGKILLed and
// restarted, and then the restarted plugin's events.
func TestSubscribeAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "fake.sock")
	p, _ := startFake(t, `{"control_socket": "`+sock+`", "state_file": "`+filepath.Join(dir, "fake.journal")+`"}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := p.Subscribe(ctx)
	if err := p.Spawn(ctx, driver.Spec{ID: "web"}); err != nil {
		t.Fatal(err)
	}

	ctl(t, sock, "power", "web", "crashed")
	if ev := next(t, events); ev.Kind != driver.EventPower || ev.ID != "web" || ev.Power != driver.PowerCrashed {
		t.Fatalf("event = %+v, want power web crashed", ev)
	}

	first := p.pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events); ev.Kind != driver.EventRestarted || ev.ID != "" || ev.At.IsZero() {
		t.Fatalf("event = %+v, want restarted", ev)
	}
	if pid := p.pid(); pid == first || pid == 0 {
		t.Fatalf("pid after EventRestarted = %d, first was %d", pid, first)
	}

	ctl(t, sock, "add", "stray")
	if ev := next(t, events); ev.Kind != driver.EventAppeared || ev.ID != "stray" || ev.Power != driver.PowerRunning {
		t.Fatalf("event from the restarted plugin = %+v, want appeared stray running", ev)
	}
	cancel()
	for range events { // closed once ctx ends
	}
}

// TestSubscribeWithoutEvents: a driver without the events capability still
// gives its subscribers EventRestarted, and Subscribe ends with Close.
func TestSubscribeWithoutEvents(t *testing.T) {
	p, _ := startPlugin(t, "minimal", minimalPath, `{}`)
	if slices := p.Capabilities(); strings.Contains(strings.Join(slices, ","), driver.CapEvents) {
		t.Fatalf("driver-minimal reports %q", slices)
	}
	events := p.Subscribe(context.Background())
	first := p.pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events); ev.Kind != driver.EventRestarted {
		t.Fatalf("event = %+v, want restarted", ev)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-events; ok {
		t.Fatal("the subscription is open after Close")
	}
	if ch := p.Subscribe(context.Background()); ch != nil {
		if _, ok := <-ch; ok {
			t.Fatal("Subscribe after Close gave an open channel")
		}
	}
}

// TestSlowSubscriber: a subscriber that does not read neither holds up
// the plugin's methods nor loses the restarted event: events past the
// buffer are dropped and counted, and "restarted" waits for room.
func TestSlowSubscriber(t *testing.T) {
	p, _ := startFake(t, `{}`)
	ctx := context.Background()
	events := p.Subscribe(ctx)
	if err := p.Spawn(ctx, driver.Spec{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	// The fake reports the power changes its own methods make.
	for i := 0; p.DroppedEvents() == 0; i++ {
		if i == 20*SubscriptionBuffer {
			t.Fatalf("%d power changes and no event dropped; buffered %d", i, len(events))
		}
		var err error
		if i%2 == 0 {
			err = p.PowerOff(ctx, "a")
		} else {
			err = p.PowerOn(ctx, "a")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	first := p.pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if pid := p.pid(); pid == first || pid == 0 {
			return errors.New("not restarted yet")
		}
		return nil
	})
	for n := 0; ; n++ {
		if ev := next(t, events); ev.Kind == driver.EventRestarted {
			break
		}
		if n > SubscriptionBuffer+1 {
			t.Fatal("drained more than the buffer and no restarted event")
		}
	}
}

// TestChecksumMismatchOnRestart: the plugin binary is replaced while the
// plugin runs, and the plugin is killed. Calls now fail with
// ErrChecksum, not a bare "restarting", and still match
// driver.ErrUnavailable; once the right binary is back, the restart
// succeeds.
func TestChecksumMismatchOnRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lucid-driver-fake")
	good, err := os.ReadFile(fakePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, good, 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(context.Background(), Config{Name: "fake", Path: path, Checksum: "sha256:" + sum, SocketDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())

	// Replace the file (a new inode: the running process keeps its own).
	tampered := path + ".new"
	if err := os.WriteFile(tampered, append(good, "tampered"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tampered, path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		_, err := p.List(context.Background())
		if !errors.Is(err, ErrChecksum) {
			return fmt.Errorf("List err = %v, want ErrChecksum", err)
		}
		return nil
	})
	_, err = p.List(context.Background())
	for _, want := range []error{ErrChecksum, ErrPluginExited, driver.ErrUnavailable} {
		if !errors.Is(err, want) {
			t.Errorf("List err = %v, want errors.Is %v", err, want)
		}
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("List err = %v, want it to name %s", err, path)
	}

	if err := os.WriteFile(tampered, good, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tampered, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error { _, err := p.List(context.Background()); return err })
}

// TestRunByHand: the fake run without the host's handshake prints
// go-plugin's notice and exits 1; `ctl` is the one thing it does alone.
func TestRunByHand(t *testing.T) {
	cmd := exec.Command(fakePath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "This binary is a plugin") {
		t.Errorf("running the fake by hand: %v\n%s\nwant exit 1 and the plugin notice", err, out)
	}
	out, err = exec.Command(fakePath, "ctl").CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "usage: lucid-driver-fake ctl --socket PATH") {
		t.Errorf("fake ctl without arguments: %v\n%s\nwant exit 2 and the usage", err, out)
	}
}

// TestOptionalWithoutCapability: a plugin without the optional interfaces
// gets ErrUnsupported from the host without a call, and conformance
// still passes (the optional subtests become "unsupported" checks).
func TestOptionalWithoutCapability(t *testing.T) {
	p, _ := startPlugin(t, "minimal", minimalPath, `{}`)
	ctx := context.Background()
	_, evErr := p.Events(ctx)
	for name, err := range map[string]error{
		"Rebuild":       p.Rebuild(ctx, "x", driver.Image{}),
		"Resize":        p.Resize(ctx, "x", driver.ResizeQueue, driver.Flavor{}),
		"ConfirmResize": p.ConfirmResize(ctx, "x"),
		"RevertResize":  p.RevertResize(ctx, "x", driver.Flavor{}),
		"Events":        evErr,
	} {
		var ce *CallError
		if !errors.Is(err, driver.ErrUnsupported) || !errors.As(err, &ce) || ce.Op != name || !strings.Contains(err.Error(), "does not report capability") {
			t.Errorf("%s: err = %v, want a *CallError for %s wrapping ErrUnsupported without a call", name, err, name)
		}
	}
}
