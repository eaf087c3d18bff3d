package driver_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// The test binary doubles as a host and a plugin for
// TestServeExitsWhenParentDies, chosen by this variable.
const roleEnv = "LUCID_SDK_DRIVER_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "plugin":
		driver.Serve(failing{err: fmt.Errorf("unused")})
		os.Exit(0)
	case "host":
		os.Exit(runHost())
	}
	os.Exit(m.Run())
}

// runHost starts the test binary as a plugin the way go-plugin does (no
// parent-death signal), waits for its handshake line, prints the plugin's
// pid and then waits to be killed.
func runHost() int {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=plugin",
		driver.Handshake.MagicCookieKey+"="+driver.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS="+strconv.Itoa(driver.ProtocolVersion))
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "no handshake:", err)
		return 1
	}
	fmt.Printf("%d %s", cmd.Process.Pid, line)
	select {}
}

// TestServeExitsWhenParentDies: a plugin whose host is SIGKILLed exits on
// its own, without help from the host (here no parent-death signal).
func TestServeExitsWhenParentDies(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc to tell a gone process from a zombie")
	}
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), roleEnv+"=host", "PLUGIN_UNIX_SOCKET_DIR="+t.TempDir())
	host.Stderr = os.Stderr
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		host.Process.Kill()
		host.Wait()
		t.Fatalf("host helper printed no plugin pid: %v", err)
	}
	pidText, handshake, _ := strings.Cut(line, " ")
	pid, err := strconv.Atoi(pidText)
	if err != nil || !strings.HasPrefix(handshake, "1|1|unix|") {
		t.Fatalf("host helper printed %q, want \"<pid> 1|1|unix|...\"", line)
	}
	if !alive(pid) {
		t.Fatalf("plugin %d not running before the host was killed", pid)
	}

	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	host.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("plugin %d still running 30s after its host was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not exited; a zombie
// (exited, not yet reaped by its new parent) counts as gone.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name's closing parenthesis.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || (stat[i+2] != 'Z' && stat[i+2] != 'X')
}
