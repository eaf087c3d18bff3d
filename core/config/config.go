// Package config decodes the operator's HCL file into typed configuration.
//
// The file is decoded once, strictly (unknown attributes and blocks are
// errors), then validated; every problem is reported as an HCL diagnostic
// with file:line:col and a source snippet, never as a bare Go error string.
// Relative paths in the file resolve against the file's directory, so the
// same config works whatever the working directory.
//
// A value the file leaves unset stays zero, and the package that uses it
// applies its own default (each field's doc comment names the effective
// default); config owns no other package's defaults. The exceptions are the
// node name ("local"), the store prefix ("/lucid"), the reconciler's
// interval (30s), a catalog entry's name (its label) and an image's
// disk_format, which are filled in here.
package config

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/lucid-project/lucid/core/instance"
)

// Config is a decoded, validated operator configuration.
//
// After Load or Parse succeed, Executor, History and Reconciler are never
// nil, so callers read them without checks.
type Config struct {
	Node  string `hcl:"node,optional"`
	Store Store  `hcl:"store,block"`
	API   API    `hcl:"api,block"`

	// LeaseTTLStr is lease_ttl as written; LeaseTTL is its value.
	LeaseTTLStr   string    `hcl:"lease_ttl,optional"`
	LeaseTTLRange hcl.Range `hcl:"lease_ttl,attr_range"`
	// LeaseTTL is the TTL of the node's registration lease: when a node
	// dies, its key vanishes this long after its last keep-alive, and the
	// transitions it owned become orphans. At least 2s and a whole number
	// of seconds (etcd leases count seconds); zero (unset) means the
	// node's default, 10s.
	LeaseTTL time.Duration

	// CacheDir is where compiled policy machine code is cached, resolved
	// against the config's directory; "" (unset) lets the node choose
	// <user cache dir>/lucid/wasm.
	CacheDir      string    `hcl:"cache_dir,optional"`
	CacheDirRange hcl.Range `hcl:"cache_dir,attr_range"`

	Executor *Executor `hcl:"executor,block"`
	History  *History  `hcl:"history,block"`
	// Defaults are who requests act as while auth is disabled (the owner
	// of new instances); never nil after Load.
	Defaults *Defaults `hcl:"defaults,block"`

	// Flavors and Images are the catalogs clients choose from (flavorRef,
	// imageRef), in file order. See Config.Flavor and Config.Image.
	Flavors []Flavor `hcl:"flavor,block"`
	Images  []Image  `hcl:"image,block"`

	Drivers    []Driver    `hcl:"driver,block"`
	Policies   []Policy    `hcl:"policy,block"`
	Reconciler *Reconciler `hcl:"reconciler,block"`

	// Auth (never nil after Load), the default Quota (nil: unlimited),
	// Projects and Users are identity's blocks; see identity.go.
	Auth     *Auth     `hcl:"auth,block"`
	Quota    *Quota    `hcl:"quota,block"`
	Projects []Project `hcl:"project,block"`
	Users    []User    `hcl:"user,block"`

	// Dir is the directory of the config file; relative paths were
	// resolved against it.
	Dir string

	files map[string]*hcl.File
}

// Store says where the records live.
type Store struct {
	Embedded *Embedded `hcl:"embedded,block"`
	// Endpoints of an etcd cluster: http://, https:// or unix:// URLs;
	// with a tls block, all must be https://.
	Endpoints      []string  `hcl:"endpoints,optional"`
	EndpointsRange hcl.Range `hcl:"endpoints,attr_range"`
	Prefix         string    `hcl:"prefix,optional"`
	// TLS is for the cluster's endpoints, or for an embedded member's
	// client_url (see TLS); nil when the block is absent.
	TLS         *TLS      `hcl:"tls,block"`
	DefRange    hcl.Range `hcl:",def_range"`
	PrefixRange hcl.Range `hcl:"prefix,attr_range"`
}

// Embedded runs etcd inside lucid serve. Its clients are Lucid itself
// (in-process) and this user's tools, through the unix socket etcd.sock
// in data_dir (made mode 0700); nothing else can reach it.
type Embedded struct {
	DataDir string `hcl:"data_dir"`
	// ClientURL exposes the member to other nodes: "https://host:port",
	// served with the store's tls block, whose client certificates it
	// requires. Only https is accepted; "" (unset) exposes nothing.
	ClientURL      string    `hcl:"client_url,optional"`
	ClientURLRange hcl.Range `hcl:"client_url,attr_range"`
	DataRange      hcl.Range `hcl:"data_dir,attr_range"`

	// QuotaMiB is etcd's backend quota (quota-backend-bytes) in MiB: when
	// the database reaches it, etcd refuses writes until space is
	// reclaimed. At least 16; zero (unset) means etcd's default, 2048.
	QuotaMiB      int       `hcl:"quota_mib,optional"`
	QuotaMiBRange hcl.Range `hcl:"quota_mib,attr_range"`
	// CompactionRevisions switches auto-compaction to revision mode,
	// keeping this many revisions. At least 1000; zero (unset) means the
	// store's default, periodic compaction of revisions older than an hour.
	CompactionRevisions      int       `hcl:"compaction_revisions,optional"`
	CompactionRevisionsRange hcl.Range `hcl:"compaction_revisions,attr_range"`
}

// TLS names PEM files, resolved against the config's directory and
// checked to exist and parse (unless file checks are skipped).
//
// With endpoints, they are Lucid's side of the connection: CAFile holds
// the CAs the cluster's server certificates must chain to ("" trusts the
// system's roots); CertFile and KeyFile are the client certificate a
// cluster with client-certificate auth demands (both or neither).
//
// With an embedded member's client_url, they are the member's side, and
// all three are required: CertFile and KeyFile are what it serves, and
// CAFile signs the client certificates it accepts.
type TLS struct {
	CAFile        string    `hcl:"ca_file,optional"`
	CertFile      string    `hcl:"cert_file,optional"`
	KeyFile       string    `hcl:"key_file,optional"`
	CAFileRange   hcl.Range `hcl:"ca_file,attr_range"`
	CertFileRange hcl.Range `hcl:"cert_file,attr_range"`
	KeyFileRange  hcl.Range `hcl:"key_file,attr_range"`
	DefRange      hcl.Range `hcl:",def_range"`
}

// ServerTLS is a certificate and its key to serve HTTPS with (PEM files,
// resolved and checked as TLS's).
type ServerTLS struct {
	CertFile      string    `hcl:"cert_file"`
	KeyFile       string    `hcl:"key_file"`
	CertFileRange hcl.Range `hcl:"cert_file,attr_range"`
	KeyFileRange  hcl.Range `hcl:"key_file,attr_range"`
	DefRange      hcl.Range `hcl:",def_range"`
}

// API is the HTTP listener. Every limit left unset is zero, and the node
// applies its default (named on each field).
type API struct {
	Listen      string    `hcl:"listen"`
	ListenRange hcl.Range `hcl:"listen,attr_range"`
	// MaxLimit is the most items one page of a list holds, as Nova's
	// [api] max_limit (>= 1); zero (unset) means the API's default, 1000.
	MaxLimit      int       `hcl:"max_limit,optional"`
	MaxLimitRange hcl.Range `hcl:"max_limit,attr_range"`
	// TLS makes the API serve HTTPS only; nil (no block) serves HTTP.
	TLS *ServerTLS `hcl:"tls,block"`

	// The timeouts as written; the fields below are their values.
	ReadHeaderTimeoutStr   string    `hcl:"read_header_timeout,optional"`
	ReadHeaderTimeoutRange hcl.Range `hcl:"read_header_timeout,attr_range"`
	ReadTimeoutStr         string    `hcl:"read_timeout,optional"`
	ReadTimeoutRange       hcl.Range `hcl:"read_timeout,attr_range"`
	WriteTimeoutStr        string    `hcl:"write_timeout,optional"`
	WriteTimeoutRange      hcl.Range `hcl:"write_timeout,attr_range"`
	IdleTimeoutStr         string    `hcl:"idle_timeout,optional"`
	IdleTimeoutRange       hcl.Range `hcl:"idle_timeout,attr_range"`
	// ReadHeaderTimeout bounds reading a request's headers, from the
	// connection's first byte or the end of the previous request; node
	// default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; node
	// default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds handling a request and writing its answer,
	// from the end of its headers; node default 60s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new
	// request for this long; node default 60s.
	IdleTimeout time.Duration
	// MaxConnections caps the connections open at once (>= 1): beyond
	// it, new connections wait to be accepted until one closes; node
	// default 1024.
	MaxConnections      int       `hcl:"max_connections,optional"`
	MaxConnectionsRange hcl.Range `hcl:"max_connections,attr_range"`
	// RateLimit bounds each client's changing requests (429 beyond it);
	// nil (no block) is off, like requests_per_second = 0.
	RateLimit *RateLimit `hcl:"rate_limit,block"`
}

// RateLimit is the api block's rate_limit: a token bucket per client (the
// authenticated user; the client's address with auth disabled and for
// token requests) for every request but GET, HEAD and OPTIONS.
type RateLimit struct {
	// RequestsPerSecond is the sustained rate (>= 0, fractions allowed);
	// 0 turns the limit off.
	RequestsPerSecond      float64   `hcl:"requests_per_second,optional"`
	RequestsPerSecondRange hcl.Range `hcl:"requests_per_second,attr_range"`
	// Burst is how many requests an idle client may send at once (>= 1);
	// zero (unset) means the API's default, twice requests_per_second.
	Burst      int       `hcl:"burst,optional"`
	BurstRange hcl.Range `hcl:"burst,attr_range"`
	// MaxDelayStr is max_delay as written; MaxDelay its value.
	MaxDelayStr   string    `hcl:"max_delay,optional"`
	MaxDelayRange hcl.Range `hcl:"max_delay,attr_range"`
	// MaxDelay bounds how long a request over the limit is held, until
	// its token is due (then it is served) or before it is refused with
	// 429 (">= 0s", at most 10s); nil (unset) means the API's default,
	// 1s, and 0 refuses at once.
	MaxDelay *time.Duration
	DefRange hcl.Range `hcl:",def_range"`
}

// Driver is one hypervisor plugin.
type Driver struct {
	Name          string    `hcl:"name,label"`
	Plugin        string    `hcl:"plugin"`
	Checksum      string    `hcl:"checksum,optional"`
	Body          *Settings `hcl:"config,block"`
	NameRange     hcl.Range `hcl:"name,label_range"`
	PluginRange   hcl.Range `hcl:"plugin,attr_range"`
	ChecksumRange hcl.Range `hcl:"checksum,attr_range"`
	DefRange      hcl.Range `hcl:",def_range"`

	// EnvExpr is env as written: a map of environment variables for the
	// plugin process, e.g. { LIBVIRT_DEFAULT_URI = "qemu:///system" }.
	EnvExpr hcl.Expression `hcl:"env,optional"`
	// PassEnv names variables of Lucid's own environment the plugin also
	// gets (those that are set), e.g. ["HOME"].
	PassEnv      []string  `hcl:"pass_env,optional"`
	PassEnvRange hcl.Range `hcl:"pass_env,attr_range"`
	// Env is env's value; nil when unset. A plugin's environment is
	// this, pass_env, PATH and what the plugin protocol needs: nothing
	// else of Lucid's (core/driver).
	Env      map[string]string
	EnvRange hcl.Range

	// Config is the config block as a JSON object, handed to the
	// plugin's Configure.
	Config json.RawMessage
	// ConfigRanges locates each attribute of the config block, so an
	// error from the plugin that names a key can point at its line.
	ConfigRanges map[string]hcl.Range
}

// Settings captures a free-form block (a driver's config).
type Settings struct {
	Remain   hcl.Body  `hcl:",remain"`
	DefRange hcl.Range `hcl:",def_range"`
}

// Policy is one WebAssembly policy module bound to a hook. Every limit
// left unset is zero, and the policy host applies its default.
type Policy struct {
	Hook         string         `hcl:"hook,label"`
	Module       string         `hcl:"module"`
	SettingsExpr hcl.Expression `hcl:"settings,optional"`
	TimeoutStr   string         `hcl:"timeout,optional"`
	// MemoryMiB caps each instance's linear memory: 1 to 4096 (wasm32);
	// zero (unset) means the host's default, 64.
	MemoryMiB int `hcl:"memory_mib,optional"`
	// Fallback is the answer when the policy fails (traps, times out,
	// answers garbage): "deny" or "allow" for validate (default deny),
	// "flag" or "leave" for reconcile (default flag); "" when unset.
	Fallback string `hcl:"fallback,optional"`
	// MaxCalls recycles an instance after this many calls (>= 1); zero
	// (unset) means the host's default.
	MaxCalls int `hcl:"max_calls,optional"`
	// MaxMemoryMiB recycles an instance whose linear memory grew past it
	// (>= 1, and <= MemoryMiB when both are set); zero (unset) means the
	// host's default.
	MaxMemoryMiB int `hcl:"max_memory_mib,optional"`
	// LogLinesPerSecond rate-limits the module's stdout/stderr in the
	// log (>= 0); zero (unset or 0) means the host's default.
	LogLinesPerSecond int `hcl:"log_lines_per_second,optional"`

	HookRange              hcl.Range `hcl:"hook,label_range"`
	ModuleRange            hcl.Range `hcl:"module,attr_range"`
	TimeoutRange           hcl.Range `hcl:"timeout,attr_range"`
	MemoryMiBRange         hcl.Range `hcl:"memory_mib,attr_range"`
	FallbackRange          hcl.Range `hcl:"fallback,attr_range"`
	MaxCallsRange          hcl.Range `hcl:"max_calls,attr_range"`
	MaxMemoryMiBRange      hcl.Range `hcl:"max_memory_mib,attr_range"`
	LogLinesPerSecondRange hcl.Range `hcl:"log_lines_per_second,attr_range"`
	DefRange               hcl.Range `hcl:",def_range"`

	Settings      json.RawMessage
	SettingsRange hcl.Range
	// Timeout bounds each call; zero (unset) means the host's default,
	// 100ms.
	Timeout time.Duration
}

// Executor bounds the node's execution of transitions.
type Executor struct {
	StepTimeoutStr   string    `hcl:"step_timeout,optional"`
	StepTimeoutRange hcl.Range `hcl:"step_timeout,attr_range"`
	// StepTimeoutsExpr is step_timeouts as written: a map from action name
	// to duration.
	StepTimeoutsExpr hcl.Expression `hcl:"step_timeouts,optional"`

	// StepTimeout bounds one step of any action, retries included (a step
	// whose driver is restarting waits for it up to this); zero (unset)
	// means the executor's default, 15m.
	StepTimeout time.Duration
	// StepTimeouts overrides StepTimeout per action (keys are
	// instance.Action names); nil when unset.
	StepTimeouts map[string]time.Duration
}

// History is the retention of status-change records. Whatever the limits,
// a live instance always keeps its newest record, so its history never
// ends up empty. Zero fields (unset) mean the store's defaults.
type History struct {
	// MaxRecords is how many records an instance keeps (>= 1); default
	// 1000.
	MaxRecords      int       `hcl:"max_records,optional"`
	MaxRecordsRange hcl.Range `hcl:"max_records,attr_range"`
	MaxAgeStr       string    `hcl:"max_age,optional"`
	MaxAgeRange     hcl.Range `hcl:"max_age,attr_range"`
	DeletedTTLStr   string    `hcl:"deleted_ttl,optional"`
	DeletedTTLRange hcl.Range `hcl:"deleted_ttl,attr_range"`

	// MaxAge drops records older than this; default 2160h (90 days).
	MaxAge time.Duration
	// DeletedTTL is how long a deleted instance's history is kept after
	// the deletion; default 168h (7 days).
	DeletedTTL time.Duration
}

// Defaults name the project and user that own new instances and their
// actions (the compute API's tenant_id and user_id) while auth is
// disabled; with auth, the token says. Each is an id: non-empty, at most
// 255 characters, no whitespace, '/' or control characters. Unset (empty) means the API's
// default, "lucid".
type Defaults struct {
	ProjectID      string    `hcl:"project_id,optional"`
	ProjectIDRange hcl.Range `hcl:"project_id,attr_range"`
	UserID         string    `hcl:"user_id,optional"`
	UserIDRange    hcl.Range `hcl:"user_id,attr_range"`
}

func (d *Defaults) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, f := range []struct {
		name, v string
		rng     hcl.Range
	}{{"project_id", d.ProjectID, d.ProjectIDRange}, {"user_id", d.UserID, d.UserIDRange}} {
		if !set(f.rng) {
			continue
		}
		if msg := badID(f.v); msg != "" {
			diags = append(diags, errAt(f.rng, "Invalid "+f.name, fmt.Sprintf("%s %q %s.", f.name, f.v, msg)))
		} else if len(f.v) > 255 {
			diags = append(diags, errAt(f.rng, "Invalid "+f.name, fmt.Sprintf("%s is %d bytes long; at most 255 are allowed.", f.name, len(f.v))))
		}
	}
	return diags
}

// Reconciler controls the record-versus-hypervisor sweep.
type Reconciler struct {
	Enabled       *bool     `hcl:"enabled,optional"`
	IntervalStr   string    `hcl:"interval,optional"`
	IntervalRange hcl.Range `hcl:"interval,attr_range"`
	Interval      time.Duration
}

// Hooks that a policy block may name.
const (
	HookValidate  = "validate"
	HookReconcile = "reconcile"
)

// Error carries HCL diagnostics and the sources they point into, so that
// printing it shows file:line:col and a snippet.
type Error struct {
	Diags hcl.Diagnostics
	files map[string]*hcl.File
}

func (e *Error) Error() string {
	// gohcl reports in map order; sort by position so output is stable.
	sort.SliceStable(e.Diags, func(i, j int) bool {
		a, b := e.Diags[i].Subject, e.Diags[j].Subject
		if a == nil || b == nil {
			return a != nil
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteString("\n")
		}
		writeDiag(&b, d, e.files)
	}
	return strings.TrimRight(b.String(), "\n")
}

// writeDiag prints one diagnostic as
//
//	file:line:col: summary
//	   12 |   listen = "8774"
//	      |            ^^^^^^
//	detail
//
// the form editors and terminals link to, with the offending source
// underlined.
func writeDiag(b *strings.Builder, d *hcl.Diagnostic, files map[string]*hcl.File) {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	if d.Subject == nil {
		fmt.Fprintf(b, "%s: %s\n", sev, d.Summary)
	} else {
		r := d.Subject
		fmt.Fprintf(b, "%s:%d:%d: %s: %s\n", r.Filename, r.Start.Line, r.Start.Column, sev, d.Summary)
		if f := files[r.Filename]; f != nil {
			lines := bytes.Split(f.Bytes, []byte("\n"))
			if r.Start.Line >= 1 && r.Start.Line <= len(lines) {
				line := string(bytes.TrimRight(lines[r.Start.Line-1], "\r"))
				fmt.Fprintf(b, "%5d | %s\n", r.Start.Line, line)
				width := r.End.Column - r.Start.Column
				if r.End.Line != r.Start.Line || width < 1 {
					width = 1
				}
				if max := len(line) - r.Start.Column + 1; width > max && max > 0 {
					width = max
				}
				fmt.Fprintf(b, "%5s | %s%s\n", "", strings.Repeat(" ", max0(r.Start.Column-1)), strings.Repeat("^", width))
			}
		}
	}
	if d.Detail != "" {
		fmt.Fprintf(b, "%s\n", d.Detail)
	}
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// Options change how a file is checked. The zero value checks everything.
type Options struct {
	// SkipFileChecks skips checking that the files and directories the
	// config names exist (driver plugins, policy modules, image files,
	// cache_dir), for checking a config written for another machine or
	// before make build. Paths are still resolved.
	SkipFileChecks bool
}

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	return Options{}.Load(path)
}

// Parse decodes and validates src, which came from filename (used in
// diagnostics and to resolve relative paths).
func Parse(filename string, src []byte) (*Config, error) {
	return Options{}.Parse(filename, src)
}

// Load is the package's Load with these options.
func (o Options) Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return o.Parse(path, src)
}

// Parse is the package's Parse with these options.
func (o Options) Parse(filename string, src []byte) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, &Error{Diags: diags, files: p.Files()}
	}
	var c Config
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &c)...)
	if diags.HasErrors() {
		return nil, &Error{Diags: diags, files: p.Files()}
	}
	c.files = p.Files()
	abs, err := filepath.Abs(filename)
	if err != nil {
		abs = filename
	}
	c.Dir = filepath.Dir(abs)
	diags = append(diags, c.validate(f.Body, o)...)
	if diags.HasErrors() {
		return nil, &Error{Diags: diags, files: p.Files()}
	}
	return &c, nil
}

// Errorf reports a problem found after decoding (a plugin that will not
// start, a module that is not WebAssembly) at a place in the file.
func (c *Config) Errorf(rng hcl.Range, summary, detailFormat string, args ...any) error {
	return &Error{
		Diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detailFormat, args...), Subject: rng.Ptr()}},
		files: c.files,
	}
}

// Path resolves p against the config file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Policy returns the policy bound to hook, or nil.
func (c *Config) Policy(hook string) *Policy {
	for i := range c.Policies {
		if c.Policies[i].Hook == hook {
			return &c.Policies[i]
		}
	}
	return nil
}

// StepTimeout is the bound on one step of action: its step_timeouts entry,
// else step_timeout, else zero (the executor's default).
func (c *Config) StepTimeout(action string) time.Duration {
	if c.Executor == nil {
		return 0
	}
	if d, ok := c.Executor.StepTimeouts[action]; ok {
		return d
	}
	return c.Executor.StepTimeout
}

// ReconcilerEnabled says whether the sweep runs (default: yes).
func (c *Config) ReconcilerEnabled() bool {
	return c.Reconciler == nil || c.Reconciler.Enabled == nil || *c.Reconciler.Enabled
}

func errAt(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

// set reports whether an optional attribute was written: gohcl leaves the
// attr_range of an absent attribute zero.
func set(rng hcl.Range) bool {
	return rng.Filename != ""
}

func (c *Config) validate(body hcl.Body, o Options) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if c.Node == "" {
		c.Node = "local"
	}
	if strings.ContainsAny(c.Node, "/ ") {
		diags = append(diags, errAt(attrRange(body, "node"), "Invalid node name", fmt.Sprintf("node %q may not contain '/' or spaces.", c.Node)))
	}

	if c.LeaseTTLStr != "" || set(c.LeaseTTLRange) {
		if d := duration(c.LeaseTTLStr, c.LeaseTTLRange, &diags); d > 0 {
			switch {
			case d < 2*time.Second:
				diags = append(diags, errAt(c.LeaseTTLRange, "lease_ttl too short", fmt.Sprintf("lease_ttl %q is below the minimum \"2s\": etcd cannot keep a shorter lease alive reliably.", c.LeaseTTLStr)))
			case d%time.Second != 0:
				diags = append(diags, errAt(c.LeaseTTLRange, "Invalid lease_ttl", fmt.Sprintf("lease_ttl %q is not a whole number of seconds; etcd leases count seconds.", c.LeaseTTLStr)))
			default:
				c.LeaseTTL = d
			}
		}
	}

	if set(c.CacheDirRange) {
		if c.CacheDir == "" {
			diags = append(diags, errAt(c.CacheDirRange, "Empty cache_dir", "Remove cache_dir to use the default (<user cache dir>/lucid/wasm), or name a directory."))
		}
		c.CacheDir = c.Path(c.CacheDir)
		if fi, err := os.Stat(c.CacheDir); !o.SkipFileChecks && c.CacheDir != "" && err == nil && !fi.IsDir() {
			diags = append(diags, errAt(c.CacheDirRange, "cache_dir is not a directory", fmt.Sprintf("%s exists and is not a directory.", c.CacheDir)))
		}
	}

	diags = append(diags, c.validateStore(o)...)

	diags = append(diags, c.validateAPI(o)...)

	if c.Executor == nil {
		c.Executor = &Executor{}
	}
	diags = append(diags, c.Executor.validate()...)
	if c.History == nil {
		c.History = &History{}
	}
	diags = append(diags, c.History.validate()...)
	if c.Defaults == nil {
		c.Defaults = &Defaults{}
	}
	diags = append(diags, c.Defaults.validate()...)

	diags = append(diags, c.validateIdentity(o)...)

	diags = append(diags, c.validateFlavors()...)
	diags = append(diags, c.validateImages(o)...)

	seen := map[string]hcl.Range{}
	for i := range c.Drivers {
		d := &c.Drivers[i]
		if prev, dup := seen[d.Name]; dup {
			diags = append(diags, errAt(d.NameRange, "Duplicate driver", fmt.Sprintf("Driver %q is already defined at %s.", d.Name, pos(prev))))
			continue
		}
		seen[d.Name] = d.NameRange
		d.Plugin = c.Path(d.Plugin)
		if !o.SkipFileChecks {
			if fi, err := os.Stat(d.Plugin); err != nil {
				diags = append(diags, errAt(d.PluginRange, "Driver plugin not found", fmt.Sprintf("No executable at %s. Build it first (make build) or fix the path.", d.Plugin)))
			} else if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
				diags = append(diags, errAt(d.PluginRange, "Driver plugin not executable", fmt.Sprintf("%s is not an executable file.", d.Plugin)))
			}
		}
		if d.Checksum != "" && !validChecksum(d.Checksum) {
			diags = append(diags, errAt(d.ChecksumRange, "Invalid checksum", "checksum must look like \"sha256:<64 hex digits>\"."))
		}
		diags = append(diags, d.validateEnv()...)
		d.Config = json.RawMessage("{}")
		if d.Body != nil {
			js, ranges, ds := bodyJSON(d.Body.Remain)
			diags = append(diags, ds...)
			d.Config, d.ConfigRanges = js, ranges
		}
	}
	if len(c.Drivers) == 0 {
		diags = append(diags, errAt(hcl.Range{Filename: c.API.ListenRange.Filename, Start: hcl.InitialPos, End: hcl.InitialPos}, "No driver", "Configure at least one driver \"name\" { plugin = \"...\" } block."))
	}

	hooks := map[string]hcl.Range{}
	for i := range c.Policies {
		p := &c.Policies[i]
		if p.Hook != HookValidate && p.Hook != HookReconcile {
			diags = append(diags, errAt(p.HookRange, "Unknown policy hook", fmt.Sprintf("%q is not a hook; use %q or %q.", p.Hook, HookValidate, HookReconcile)))
			continue
		}
		if prev, dup := hooks[p.Hook]; dup {
			diags = append(diags, errAt(p.HookRange, "Duplicate policy", fmt.Sprintf("A %q policy is already defined at %s.", p.Hook, pos(prev))))
			continue
		}
		hooks[p.Hook] = p.HookRange
		diags = append(diags, c.validatePolicy(p, o)...)
	}

	if c.Reconciler == nil {
		c.Reconciler = &Reconciler{}
	}
	c.Reconciler.Interval = 30 * time.Second
	if c.Reconciler.IntervalStr != "" || set(c.Reconciler.IntervalRange) {
		c.Reconciler.Interval = duration(c.Reconciler.IntervalStr, c.Reconciler.IntervalRange, &diags)
	}
	return diags
}

func (c *Config) validateStore(o Options) hcl.Diagnostics {
	var diags hcl.Diagnostics
	s := &c.Store
	switch {
	case s.Embedded != nil && len(s.Endpoints) > 0:
		diags = append(diags, errAt(s.DefRange, "Conflicting store settings", "Set either an embedded block or endpoints, not both."))
	case s.Embedded == nil && len(s.Endpoints) == 0:
		diags = append(diags, errAt(s.DefRange, "Missing store", "Set an embedded { data_dir = \"...\" } block or endpoints = [\"https://host:2379\"]."))
	case s.Embedded != nil:
		e := s.Embedded
		if e.DataDir == "" {
			diags = append(diags, errAt(e.DataRange, "Empty data_dir", "The embedded etcd member needs a directory for its data."))
		}
		e.DataDir = c.Path(e.DataDir)
		atLeast("quota_mib", e.QuotaMiB, 16, e.QuotaMiBRange, &diags)
		atLeast("compaction_revisions", e.CompactionRevisions, 1000, e.CompactionRevisionsRange, &diags)
	}
	diags = append(diags, c.validateStoreTLS(o)...)
	if s.Prefix == "" {
		s.Prefix = "/lucid"
	}
	if !strings.HasPrefix(s.Prefix, "/") {
		diags = append(diags, errAt(s.PrefixRange, "Invalid prefix", fmt.Sprintf("prefix %q must start with '/'.", s.Prefix)))
	}
	return diags
}

func (c *Config) validatePolicy(p *Policy, o Options) hcl.Diagnostics {
	var diags hcl.Diagnostics
	p.Module = c.Path(p.Module)
	if !o.SkipFileChecks {
		if fi, err := os.Stat(p.Module); err != nil {
			diags = append(diags, errAt(p.ModuleRange, "Policy module not found", fmt.Sprintf("No file at %s. Build it first (make build) or fix the path.", p.Module)))
		} else if fi.IsDir() {
			diags = append(diags, errAt(p.ModuleRange, "Policy module is a directory", p.Module))
		}
	}
	p.Settings = json.RawMessage("{}")
	p.SettingsRange = p.DefRange
	if p.SettingsExpr != nil && p.SettingsExpr.Range().Start != p.SettingsExpr.Range().End {
		p.SettingsRange = p.SettingsExpr.Range()
		v, ds := p.SettingsExpr.Value(nil)
		diags = append(diags, ds...)
		if !ds.HasErrors() && !v.IsNull() {
			if !v.Type().IsObjectType() && !v.Type().IsMapType() {
				diags = append(diags, errAt(p.SettingsRange, "Invalid settings", "settings must be an object, e.g. { on_error = \"leave\" }."))
			} else if js, err := ctyjson.Marshal(v, v.Type()); err != nil {
				diags = append(diags, errAt(p.SettingsRange, "Invalid settings", err.Error()))
			} else {
				p.Settings = js
			}
		}
	}
	if p.TimeoutStr != "" || set(p.TimeoutRange) {
		p.Timeout = duration(p.TimeoutStr, p.TimeoutRange, &diags)
	}
	if set(p.MemoryMiBRange) && (p.MemoryMiB < 1 || p.MemoryMiB > 4096) {
		diags = append(diags, errAt(p.MemoryMiBRange, "Invalid memory_mib", fmt.Sprintf("memory_mib must be between 1 and 4096 (the 4 GiB of wasm32); got %d.", p.MemoryMiB)))
	}
	if set(p.FallbackRange) {
		allowed := []string{"deny", "allow"}
		if p.Hook == HookReconcile {
			allowed = []string{"flag", "leave"}
		}
		if p.Fallback != allowed[0] && p.Fallback != allowed[1] {
			diags = append(diags, errAt(p.FallbackRange, "Invalid fallback", fmt.Sprintf("%q is not a fallback for a %s policy; use %q (the default) or %q.", p.Fallback, p.Hook, allowed[0], allowed[1])))
		}
	}
	atLeast("max_calls", p.MaxCalls, 1, p.MaxCallsRange, &diags)
	if atLeast("max_memory_mib", p.MaxMemoryMiB, 1, p.MaxMemoryMiBRange, &diags) &&
		set(p.MaxMemoryMiBRange) && p.MemoryMiB > 0 && p.MaxMemoryMiB > p.MemoryMiB {
		diags = append(diags, errAt(p.MaxMemoryMiBRange, "Invalid max_memory_mib", fmt.Sprintf("max_memory_mib = %d is above memory_mib = %d: an instance can never grow past memory_mib, so it would never be recycled for its memory.", p.MaxMemoryMiB, p.MemoryMiB)))
	}
	atLeast("log_lines_per_second", p.LogLinesPerSecond, 0, p.LogLinesPerSecondRange, &diags)
	return diags
}

func (e *Executor) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if e.StepTimeoutStr != "" || set(e.StepTimeoutRange) {
		e.StepTimeout = duration(e.StepTimeoutStr, e.StepTimeoutRange, &diags)
	}
	if e.StepTimeoutsExpr == nil || e.StepTimeoutsExpr.Range().Start == e.StepTimeoutsExpr.Range().End {
		return diags // absent: gohcl stands in an empty null expression
	}
	pairs, ds := hcl.ExprMap(e.StepTimeoutsExpr)
	if ds.HasErrors() {
		return append(diags, errAt(e.StepTimeoutsExpr.Range(), "Invalid step_timeouts", "step_timeouts must be a map from action name to duration, e.g. { create = \"15m\", resize = \"30m\" }."))
	}
	e.StepTimeouts = map[string]time.Duration{}
	seen := map[string]hcl.Range{}
	for _, kv := range pairs {
		rng := hcl.RangeBetween(kv.Key.Range(), kv.Value.Range())
		k, ds := kv.Key.Value(nil)
		if ds.HasErrors() || k.IsNull() || !k.IsKnown() || k.Type() != cty.String {
			diags = append(diags, errAt(kv.Key.Range(), "Invalid step_timeouts key", "A key must be an action name: "+actionList()+"."))
			continue
		}
		action := k.AsString()
		if _, err := instance.Lookup(instance.Action(action)); err != nil {
			diags = append(diags, errAt(rng, "Unknown action in step_timeouts", fmt.Sprintf("%q is not an action; use one of %s.", action, actionList())))
			continue
		}
		if prev, dup := seen[action]; dup {
			diags = append(diags, errAt(rng, "Duplicate step timeout", fmt.Sprintf("%s is already set at %s.", action, pos(prev))))
			continue
		}
		seen[action] = rng
		v, ds := kv.Value.Value(nil)
		if !ds.HasErrors() && !v.IsNull() {
			v, _ = convert.Convert(v, cty.String)
		}
		if ds.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
			diags = append(diags, errAt(rng, "Invalid duration", fmt.Sprintf("%s: a step timeout is a duration string such as \"15m\".", action)))
			continue
		}
		if d := duration(v.AsString(), rng, &diags); d > 0 {
			e.StepTimeouts[action] = d
		}
	}
	return diags
}

// actionList names every action, for diagnostics.
func actionList() string {
	var names []string
	for _, a := range instance.Actions() {
		names = append(names, string(a.Action))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func (h *History) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	atLeast("max_records", h.MaxRecords, 1, h.MaxRecordsRange, &diags)
	if h.MaxAgeStr != "" || set(h.MaxAgeRange) {
		h.MaxAge = duration(h.MaxAgeStr, h.MaxAgeRange, &diags)
	}
	if h.DeletedTTLStr != "" || set(h.DeletedTTLRange) {
		h.DeletedTTL = duration(h.DeletedTTLStr, h.DeletedTTLRange, &diags)
	}
	return diags
}

// atLeast reports an attribute that was set below min, and says whether
// the value is acceptable (an unset attribute is).
func atLeast(name string, v, min int, rng hcl.Range, diags *hcl.Diagnostics) bool {
	if !set(rng) || v >= min {
		return true
	}
	*diags = append(*diags, errAt(rng, "Invalid "+name, fmt.Sprintf("%s must be at least %d; got %d.", name, min, v)))
	return false
}

func validChecksum(s string) bool {
	hexSum, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexSum) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexSum)
	return err == nil
}

func duration(s string, rng hcl.Range, diags *hcl.Diagnostics) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		*diags = append(*diags, errAt(rng, "Invalid duration", fmt.Sprintf("%q is not a positive duration such as \"200ms\" or \"30s\".", s)))
		return 0
	}
	return d
}

// bodyJSON turns a block of plain attributes into a JSON object.
func bodyJSON(body hcl.Body) (json.RawMessage, map[string]hcl.Range, hcl.Diagnostics) {
	attrs, diags := body.JustAttributes()
	if diags.HasErrors() {
		return nil, nil, diags
	}
	vals := map[string]cty.Value{}
	ranges := map[string]hcl.Range{}
	for name, a := range attrs {
		ranges[name] = a.Range
		v, ds := a.Expr.Value(nil)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			continue
		}
		vals[name] = v
	}
	if diags.HasErrors() {
		return nil, nil, diags
	}
	obj := cty.EmptyObjectVal
	if len(vals) > 0 {
		obj = cty.ObjectVal(vals)
	}
	js, err := ctyjson.Marshal(obj, obj.Type())
	if err != nil {
		return nil, nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid config block", Detail: err.Error()})
	}
	return js, ranges, diags
}

// attrRange finds a top-level attribute or block's range for diagnostics.
func attrRange(body hcl.Body, name string) hcl.Range {
	content, _, _ := body.PartialContent(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: name}},
	})
	if content != nil {
		if a, ok := content.Attributes[name]; ok {
			return a.Range
		}
	}
	return body.MissingItemRange()
}

// AsError returns the diagnostics error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// KeyIn finds the config-block attribute that msg (an error from the
// plugin) names, quoted or followed by ':' as drivers usually write it,
// and returns its range.
func (d *Driver) KeyIn(msg string) (hcl.Range, bool) {
	keys := make([]string, 0, len(d.ConfigRanges))
	for k := range d.ConfigRanges {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.Contains(msg, `"`+k+`"`) || strings.Contains(msg, k+":") {
			return d.ConfigRanges[k], true
		}
	}
	return hcl.Range{}, false
}
