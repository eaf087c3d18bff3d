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
		return cmd, client.New(a)
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
