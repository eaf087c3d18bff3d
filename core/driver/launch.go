package driver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/lucid-project/lucid/sdk/driver"
)

// maxStartTimeout bounds the handshake when the caller's ctx has no
// earlier deadline. go-plugin's Start takes no ctx, only a timeout.
const maxStartTimeout = 10 * time.Second

// proc is one plugin process and its go-plugin client. A go-plugin client
// is single-use, so every (re)start gets a new proc.
type proc struct {
	client  *plugin.Client
	drv     *driver.Client
	pid     int
	started time.Time
	info    driver.Info

	// exited is done once the process has been reaped; exitErr is set
	// before that and only read after it.
	exited  context.Context
	exitErr error
}

// kill stops the process (gracefully first, see plugin.Client.Kill), waits
// for go-plugin's goroutines and removes the socket directory.
func (pr *proc) kill() { pr.client.Kill() }

// launch starts a plugin process, handshakes, and calls Info and Configure.
// On error nothing is left running. Errors name the path and wrap
// ErrLaunch, ErrChecksum, or what Configure returned.
func launch(ctx context.Context, cfg Config, config []byte, fork *forker, log hclog.Logger, slogger *slog.Logger) (*proc, error) {
	if err := checkExecutable(cfg.Path); err != nil {
		return nil, err
	}
	if err := verifyChecksum(cfg.Path, cfg.Checksum); err != nil {
		return nil, err
	}

	exited, markExited := context.WithCancel(context.Background())
	pr := &proc{exited: exited}
	var r *cmdRunner
	pr.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  driver.Handshake,
		Plugins:          driver.PluginSet(nil),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     startTimeout(ctx),
		Logger:           log,
		SyncStdout:       &lineLogger{log: slogger, stream: "stdout"},
		SyncStderr:       &lineLogger{log: slogger, stream: "stderr"},
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: cfg.SocketDir},
		// Each launch makes a fresh certificate pair: the host accepts
		// only the plugin it started, and the plugin only this host.
		AutoMTLS: true,
		// The plugin's environment is built below, from the config.
		SkipHostEnv: true,
		RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, sockDir string) (runner.Runner, error) {
			var err error
			r, err = newCmdRunner(cfg.Path, pluginEnv(cfg, os.LookupEnv, spec.Env), sockDir, fork, func(err error) {
				pr.exitErr = err
				markExited()
			})
			return r, err
		},
	})
	fail := func(err error) (*proc, error) {
		pr.kill()
		if r != nil { // Kill skips cleanup for a process that never started
			_ = os.RemoveAll(r.sockDir)
		}
		markExited()
		return nil, err
	}

	rpc, err := pr.client.Client()
	if err != nil {
		return fail(fmt.Errorf("%w: %s: %v", ErrLaunch, cfg.Path, err))
	}
	raw, err := rpc.Dispense(driver.PluginName)
	if err != nil {
		return fail(fmt.Errorf("%w: %s: %v", ErrLaunch, cfg.Path, err))
	}
	drv, ok := raw.(*driver.Client)
	if !ok {
		return fail(fmt.Errorf("%w: %s: dispensed %T, not a driver", ErrLaunch, cfg.Path, raw))
	}
	pr.drv, pr.pid, pr.started = drv, r.pid(), time.Now()

	if pr.info, err = drv.Info(ctx); err != nil {
		return fail(fmt.Errorf("%s: info: %w", cfg.Path, err))
	}
	if err := drv.Configure(ctx, config); err != nil {
		return fail(fmt.Errorf("%s: configure: %w", cfg.Path, err))
	}
	return pr, nil
}

// pluginEnv is a plugin process's whole environment: the host's PATH (so
// a driver finds its hypervisor's tools as the operator's shell would),
// the variables of cfg.PassEnv that lookup finds, cfg.Env, and last the
// protocol's own variables (checkEnv keeps the others off their names).
func pluginEnv(cfg Config, lookup func(string) (string, bool), protocol []string) []string {
	vars := map[string]string{}
	for _, name := range append([]string{"PATH"}, cfg.PassEnv...) {
		if v, ok := lookup(name); ok {
			vars[name] = v
		}
	}
	maps.Copy(vars, cfg.Env)
	env := make([]string, 0, len(vars)+len(protocol))
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, name+"="+vars[name])
	}
	return append(env, protocol...)
}

// checkEnv refuses configured variables the plugin protocol sets itself:
// one of them would break the handshake or replace its certificate.
func checkEnv(cfg Config) error {
	var bad []string
	for _, name := range append(slices.Collect(maps.Keys(cfg.Env)), cfg.PassEnv...) {
		if name == driver.Handshake.MagicCookieKey || strings.HasPrefix(name, "PLUGIN_") || name == "" || strings.ContainsAny(name, "=\x00") {
			bad = append(bad, name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: %q: %s and PLUGIN_* belong to the plugin protocol, and a name has no '=' or NUL", ErrEnv, bad, driver.Handshake.MagicCookieKey)
}

func startTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < maxStartTimeout {
			return max(d, time.Millisecond)
		}
	}
	return maxStartTimeout
}

func checkExecutable(path string) error {
	if path == "" {
		return fmt.Errorf("%w: no plugin path", ErrLaunch)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLaunch, err) // *fs.PathError names the path
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: %s: not an executable file", ErrLaunch, path)
	}
	return nil
}

// verifyChecksum checks path against want ("sha256:<hex>"); "" skips it.
// The file is hashed just before exec; a file swapped in between is not
// caught (the host trusts the directory it runs plugins from).
func verifyChecksum(path, want string) error {
	if want == "" {
		return nil
	}
	algo, hexSum, ok := strings.Cut(want, ":")
	wantSum, err := hex.DecodeString(hexSum)
	if !ok || algo != "sha256" || err != nil || len(wantSum) != sha256.Size {
		return fmt.Errorf("%w: %s: malformed checksum %q, want \"sha256:<64 hex digits>\"", ErrChecksum, path, want)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLaunch, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%w: %w", ErrLaunch, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, wantSum) {
		return fmt.Errorf("%w: %s is sha256:%x, want %s", ErrChecksum, path, got, want)
	}
	return nil
}

// cmdRunner runs the plugin as a plain child process. It exists (instead
// of go-plugin's default runner) for three reasons: onExit tells the host
// the moment the process is reaped; go-plugin then gives each process a
// private socket directory under Config.SocketDir that Kill removes; and
// the process is started by the Plugin's forker, so it dies with the host.
type cmdRunner struct {
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
	sockDir        string
	fork           *forker

	once   sync.Once
	onExit func(error)
}

var _ runner.Runner = (*cmdRunner)(nil)

func newCmdRunner(path string, env []string, sockDir string, fork *forker, onExit func(error)) (*cmdRunner, error) {
	cmd := exec.Command(path)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &cmdRunner{cmd: cmd, stdout: stdout, stderr: stderr, sockDir: sockDir, fork: fork, onExit: onExit}, nil
}

func (r *cmdRunner) Start(context.Context) error { return r.fork.start(r.cmd) }

// Wait reaps the process. go-plugin calls it once, from its own goroutine.
func (r *cmdRunner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.once.Do(func() { r.onExit(err) })
	return err
}

func (r *cmdRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *cmdRunner) pid() int {
	if r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

func (r *cmdRunner) ID() string {
	if p := r.pid(); p != 0 {
		return strconv.Itoa(p)
	}
	return ""
}

func (r *cmdRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *cmdRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *cmdRunner) Name() string          { return r.cmd.Path }

func (r *cmdRunner) Diagnose(context.Context) string {
	return "is it a Lucid driver built with sdk/driver for this OS and architecture?"
}

func (r *cmdRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *cmdRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
