package soak

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a `lucid serve` subprocess under load: the soak's, and the
// one `lucid bench throughput` measures (internal/throughput).
type Server struct {
	cmd     *exec.Cmd
	plugin  string
	apiURL  string
	etcdURL string
	log     *serveLog
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// config is the server's config.hcl: one node on an embedded etcd with
// the soak's quota and retention, the fake driver without delays, the
// validate policy, no reconciler, no authentication. Ports are chosen by the server and read
// from its "lucid ready" line.
func config(cfg Config) string {
	compaction := ""
	if cfg.CompactionRevisions > 0 {
		compaction = fmt.Sprintf("\n    compaction_revisions = %d", cfg.CompactionRevisions)
	}
	timeout := ""
	if cfg.PolicyTimeout > 0 {
		timeout = fmt.Sprintf("\n  timeout  = %q", cfg.PolicyTimeout.String())
	}
	cache := cfg.CacheDir
	if cache == "" {
		cache = filepath.Join(cfg.Dir, "wasm-cache")
	}
	return fmt.Sprintf(`# Written by lucid bench soak.
node      = "soak"
cache_dir = %q

store {
  embedded {
    data_dir  = "data/etcd"
    quota_mib = %d%s
  }
  prefix = "/lucid"
}

api { listen = "127.0.0.1:0" }

flavor "m1.tiny" {
  vcpus   = 1
  ram_mb  = 512
  disk_gb = 1
}

image "cirros" { source = "fake://cirros" }

driver "fake" {
  plugin = %q
}

policy "validate" {
  module   = %q
  settings = %s%s
}

history {
  max_records = %d
  deleted_ttl = %q
}

reconciler { enabled = false }

# The load is the status changes; it does not log in (the API is on
# loopback only).
auth { enabled = false }
`, cache, cfg.QuotaMiB, compaction, cfg.Plugin, cfg.Policy, cfg.PolicySettings, timeout, cfg.MaxRecords, cfg.DeletedTTL.String())
}

// startServer starts the soak's server on its config.
func startServer(ctx context.Context, cfg Config) (*Server, error) {
	return StartServer(ctx, ServerConfig{Lucid: cfg.Lucid, Plugin: cfg.Plugin, Dir: cfg.Dir, Config: config(cfg)})
}

// ServerConfig says how to start a Server.
type ServerConfig struct {
	// Lucid is the lucid executable and Plugin the driver plugin the
	// config names (it is how PluginPID tells the plugin among the
	// server's children). Absolute paths.
	Lucid, Plugin string
	// Dir receives config.hcl and serve.log, and is the server's working
	// directory (relative paths in Config are relative to it).
	Dir string
	// Config is the text of config.hcl. Its api.listen should be port 0
	// on loopback: the addresses are read from the "lucid ready" line.
	Config string
	// Args are more arguments to `lucid serve` (e.g. --cpu-profile).
	Args []string
}

// StartServer writes the config and starts `lucid serve` on it, and
// returns once it is ready. The server's output goes to serve.log in
// cfg.Dir; it is sent SIGTERM if this process dies. The caller stops it
// with Stop.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	path := filepath.Join(cfg.Dir, "config.hcl")
	if err := os.WriteFile(path, []byte(cfg.Config), 0o600); err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.Dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	cmd := exec.Command(cfg.Lucid, append([]string{"serve", "--config", path, "--log-level", "info"}, cfg.Args...)...)
	cmd.Dir = cfg.Dir
	cmd.Stdout = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("soak: start lucid serve: %w", err)
	}
	s := &Server{cmd: cmd, plugin: cfg.Plugin, log: newServeLog(), exited: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			s.log.line(line)
		}
	}()
	go func() {
		<-copied // Wait closes the pipe: read it to the end first
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	select {
	case <-s.log.readyCh:
		s.apiURL, s.etcdURL = s.log.api, s.log.etcd
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("soak: lucid serve exited before it was ready (%v); its log is %s:\n%s",
			s.waitErr, filepath.Join(cfg.Dir, "serve.log"), s.log.tail())
	case <-time.After(2 * time.Minute):
		s.Stop()
		return nil, fmt.Errorf("soak: lucid serve not ready after 2 minutes; its log:\n%s", s.log.tail())
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// API is the base URL of the server's API ("http://127.0.0.1:port").
func (s *Server) API() string { return s.apiURL }

// EtcdURL is the client URL of the server's embedded etcd member (a unix
// socket in its data directory).
func (s *Server) EtcdURL() string { return s.etcdURL }

// Stop sends SIGTERM and waits (30s, then SIGKILL). A server that had
// already exited, or exits with an error, is an error: it died under load.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return fmt.Errorf("soak: lucid serve exited during the run: %v; its log ends:\n%s", s.waitErr, s.log.tail())
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("soak: lucid serve did not stop within 30s of SIGTERM")
	}
	if s.waitErr != nil {
		return fmt.Errorf("soak: lucid serve: %v; its log ends:\n%s", s.waitErr, s.log.tail())
	}
	return nil
}

// PluginPID finds the driver plugin among the server's children (0: none
// running).
func (s *Server) PluginPID() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Field 4 is the parent; field 2 (comm) may hold spaces but
		// ends with the last ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(s.PID()) {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == s.plugin {
			return pid
		}
	}
	return 0
}

// rss reads a process's resident set (VmRSS) in bytes; 0 if it cannot.
func rss(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// CPU reads a process's CPU time (user + system) from /proc; 0 if it
// cannot. Its resolution is the kernel's clock tick (10ms).
func CPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// utime and stime are fields 14 and 15, in clock ticks (100 a second
	// on Linux); counted after comm's closing ')', they are 12 and 13.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// LogStats is what the server logged during the run.
type LogStats struct {
	// Errors counts level=ERROR lines; FirstErrors keeps the first few.
	Errors      int
	FirstErrors []string
	// Retention passes that removed records, and what they removed.
	RetentionPasses    int
	RecordsRemoved     int64
	HistoriesRemoved   int64
	Defrags            int
	DefragBlocked      time.Duration
	DefragBlockedMax   time.Duration
	NoSpaceAlarms      int
	PolicyFailures     int // "validate policy failed" lines
	ExecutorWriteFails int // "executor: write outcome" lines
}

// serveLog follows the server's log (slog's text format).
type serveLog struct {
	mu       sync.Mutex
	readyCh  chan struct{}
	api      string
	etcd     string
	last     []string
	st       LogStats
	gotReady bool
}

func newServeLog() *serveLog { return &serveLog{readyCh: make(chan struct{})} }

func (l *serveLog) line(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last = append(l.last, line); len(l.last) > 20 {
		l.last = l.last[1:]
	}
	if strings.Contains(line, " level=INFO msg=http ") {
		return // one per request: nothing to count
	}
	kv := parseLogLine(line)
	msg := kv["msg"]
	if kv["level"] == "ERROR" {
		l.st.Errors++
		if len(l.st.FirstErrors) < 5 {
			l.st.FirstErrors = append(l.st.FirstErrors, line)
		}
	}
	switch {
	case msg == "lucid ready" && !l.gotReady:
		l.api, l.etcd, l.gotReady = kv["api"], kv["etcd"], true
		close(l.readyCh)
	case msg == "store maintenance: history retention removed records":
		l.st.RetentionPasses++
		n, _ := strconv.ParseInt(kv["records"], 10, 64)
		d, _ := strconv.ParseInt(kv["deleted_records"], 10, 64)
		l.st.RecordsRemoved += n
		l.st.HistoriesRemoved += d
	case msg == "store maintenance: defragmented":
		l.st.Defrags++
		d, _ := time.ParseDuration(kv["blocked"])
		l.st.DefragBlocked += d
		l.st.DefragBlockedMax = max(l.st.DefragBlockedMax, d)
	case strings.HasPrefix(msg, "store full: etcd raised its NOSPACE alarm"):
		l.st.NoSpaceAlarms++
	case strings.HasPrefix(msg, "validate policy failed"):
		l.st.PolicyFailures++
	case msg == "executor: write outcome":
		l.st.ExecutorWriteFails++
	}
}

func (l *serveLog) stats() LogStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.FirstErrors = append([]string(nil), st.FirstErrors...)
	return st
}

func (l *serveLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, "\n")
}

// parseLogLine splits a slog text line into its key=value pairs; quoted
// values are unquoted.
func parseLogLine(line string) map[string]string {
	out := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		k, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end, esc := 1, false
			for ; end < len(rest); end++ {
				if esc {
					esc = false
				} else if rest[end] == '\\' {
					esc = true
				} else if rest[end] == '"' {
					break
				}
			}
			if end >= len(rest) {
				break
			}
			q := rest[:end+1]
			if u, err := strconv.Unquote(q); err == nil {
				v = u
			} else {
				v = q
			}
			rest = rest[end+1:]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		out[k] = v
		line = rest
	}
	return out
}
