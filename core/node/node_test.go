package node_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// serve runs `lucid serve` as a real process and returns it with the
// API's address, read from its "lucid ready" log line.
func serve(t *testing.T, cfg string) (*exec.Cmd, *client.Client) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t, "."), "serve", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := regexp.MustCompile(`"lucid ready" api=(http://\S+)`)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log(sc.Text())
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addr:
		return cmd, testnode.AdminClient(t, cfg, a)
	case <-time.After(60 * time.Second):
		t.Fatal("lucid serve did not become ready")
	}
	return nil, nil
}

// kill -9 of lucid serve in the middle of a step: its driver plugin must
// not outlive it (two drivers for one hypervisor after a restart), and
// the restarted node resumes the step, leaving a legal history.
func TestKilledServeResumes(t *testing.T) {
	dir := t.TempDir()
	cfg := testnode.Config(t, testnode.Options{Dir: dir, Driver: `boot_delay = "1h"`})
	cmd, cl := serve(t, cfg)
	ctx := context.Background()
	id, r, err := cl.Create(ctx, client.CreateRequest{Name: "survivor", FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	fake := testenv.Binary(t, "./plugins/fake")
	var plugins []int
	testenv.Eventually(t, 10*time.Second, func() bool {
		plugins = testenv.Descendants(t, cmd.Process.Pid, fake)
		return len(plugins) == 1
	}, "lucid serve (pid %d) has no plugin child", cmd.Process.Pid)
	if in, _ := cl.Instance(ctx, id); in.Status != "BUILD" {
		t.Fatalf("status %s, want BUILD while the spawn takes an hour", in.Status)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	testenv.Eventually(t, 10*time.Second, func() bool { return !testenv.Alive(plugins[0]) },
		"plugin pid %d outlived its SIGKILLed host", plugins[0])

	// The same data, a driver that boots at once: the step is resumed.
	src, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(src), `boot_delay = "1h"`, `boot_delay = "0s"`, 1)), 0o644)
	_, cl = serve(t, cfg)
	testenv.Eventually(t, 30*time.Second, func() bool {
		in, err := cl.Instance(ctx, id)
		return err == nil && in.Transition == nil
	}, "the create was not resumed")
	h, err := cl.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	testnode.AssertHistory(t, h, []testnode.Step{
		{"", "BUILD", "create", "api", r.RequestID},
		{"BUILD", "ACTIVE", "create", "driver", r.RequestID},
	})
}

// kill -9 during PREP_RESIZE: the restarted node resumes the step and the
// resize ends in VERIFY_RESIZE, with each step recorded once.
func TestKilledDuringResizeResumes(t *testing.T) {
	dir := t.TempDir()
	state := dir + "/fake-state.json"
	cfg := testnode.Config(t, testnode.Options{Dir: dir, Driver: `resize_delay = "400ms"
    state_file = "` + state + `"`})
	cmd, cl := serve(t, cfg)
	ctx := context.Background()
	id, r, err := cl.Create(ctx, client.CreateRequest{Name: "resizing", FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Wait(ctx, id, r.RequestID, nil); err != nil {
		t.Fatal(err)
	}
	rr, err := cl.Action(ctx, id, map[string]any{"resize": map[string]string{"flavorRef": "m1.small"}}, 202)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		in, err := cl.Instance(ctx, id)
		return err == nil && in.Status == "PREP_RESIZE"
	}, "resize never showed PREP_RESIZE")
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	_, cl = serve(t, cfg)
	testenv.Eventually(t, 30*time.Second, func() bool {
		in, err := cl.Instance(ctx, id)
		return err == nil && in.Transition == nil
	}, "the resize was not resumed")
	in, _ := cl.Instance(ctx, id)
	if in.Status != "VERIFY_RESIZE" || in.Flavor.ID != "m1.small" {
		t.Fatalf("after the resumed resize: %s %s fault %+v", in.Status, in.Flavor.ID, in.Fault)
	}
	h, _ := cl.History(ctx, id)
	testnode.AssertHistory(t, h[2:], []testnode.Step{
		{"ACTIVE", "QUEUE_RESIZE", "resize", "api", rr.RequestID},
		{"QUEUE_RESIZE", "PREP_RESIZE", "resize", "driver", rr.RequestID},
		{"PREP_RESIZE", "RESIZE", "resize", "driver", rr.RequestID},
		{"RESIZE", "VERIFY_RESIZE", "resize", "driver", rr.RequestID},
	})
}
