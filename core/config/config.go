// Package config decodes the operator's HCL file into typed configuration.
//
// The file is decoded once, strictly (unknown attributes and blocks are
// errors), then validated; every problem is reported as an HCL diagnostic
// with file:line:col and a source snippet, never as a bare Go error string.
// Relative paths in the file resolve against the file's directory, so the
// same config works whatever the working directory.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Config is a decoded, validated operator configuration.
type Config struct {
	Node       string      `hcl:"node,optional"`
	Store      Store       `hcl:"store,block"`
	API        API         `hcl:"api,block"`
	Drivers    []Driver    `hcl:"driver,block"`
	Policies   []Policy    `hcl:"policy,block"`
	Reconciler *Reconciler `hcl:"reconciler,block"`

	// Dir is the directory of the config file; relative paths were
	// resolved against it.
	Dir string

	files map[string]*hcl.File
}

// Store says where the records live.
type Store struct {
	Embedded    *Embedded `hcl:"embedded,block"`
	Endpoints   []string  `hcl:"endpoints,optional"`
	Prefix      string    `hcl:"prefix,optional"`
	TLS         *TLS      `hcl:"tls,block"`
	DefRange    hcl.Range `hcl:",def_range"`
	PrefixRange hcl.Range `hcl:"prefix,attr_range"`
}

// Embedded runs etcd inside lucid serve.
type Embedded struct {
	DataDir   string    `hcl:"data_dir"`
	ClientURL string    `hcl:"client_url,optional"`
	DataRange hcl.Range `hcl:"data_dir,attr_range"`
}

// TLS for a remote etcd cluster.
type TLS struct {
	CAFile   string `hcl:"ca_file,optional"`
	CertFile string `hcl:"cert_file,optional"`
	KeyFile  string `hcl:"key_file,optional"`
}

// API is the HTTP listener.
type API struct {
	Listen      string    `hcl:"listen"`
	ListenRange hcl.Range `hcl:"listen,attr_range"`
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

// Policy is one WebAssembly policy module bound to a hook.
type Policy struct {
	Hook          string         `hcl:"hook,label"`
	Module        string         `hcl:"module"`
	SettingsExpr  hcl.Expression `hcl:"settings,optional"`
	TimeoutStr    string         `hcl:"timeout,optional"`
	MemoryMiB     int            `hcl:"memory_mib,optional"`
	HookRange     hcl.Range      `hcl:"hook,label_range"`
	ModuleRange   hcl.Range      `hcl:"module,attr_range"`
	TimeoutRange  hcl.Range      `hcl:"timeout,attr_range"`
	DefRange      hcl.Range      `hcl:",def_range"`
	Settings      json.RawMessage
	SettingsRange hcl.Range
	Timeout       time.Duration
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

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, src)
}

// Parse decodes and validates src, which came from filename (used in
// diagnostics and to resolve relative paths).
func Parse(filename string, src []byte) (*Config, error) {
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
	diags = append(diags, c.validate(f.Body)...)
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

// ReconcilerEnabled says whether the sweep runs (default: yes).
func (c *Config) ReconcilerEnabled() bool {
	return c.Reconciler == nil || c.Reconciler.Enabled == nil || *c.Reconciler.Enabled
}

func errAt(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

func (c *Config) validate(body hcl.Body) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if c.Node == "" {
		c.Node = "local"
	}
	if strings.ContainsAny(c.Node, "/ ") {
		diags = append(diags, errAt(attrRange(body, "node"), "Invalid node name", fmt.Sprintf("node %q may not contain '/' or spaces.", c.Node)))
	}

	s := &c.Store
	switch {
	case s.Embedded != nil && len(s.Endpoints) > 0:
		diags = append(diags, errAt(s.DefRange, "Conflicting store settings", "Set either an embedded block or endpoints, not both."))
	case s.Embedded == nil && len(s.Endpoints) == 0:
		diags = append(diags, errAt(s.DefRange, "Missing store", "Set an embedded { data_dir = \"...\" } block or endpoints = [\"https://host:2379\"]."))
	case s.Embedded != nil:
		if s.Embedded.DataDir == "" {
			diags = append(diags, errAt(s.Embedded.DataRange, "Empty data_dir", "The embedded etcd member needs a directory for its data."))
		}
		s.Embedded.DataDir = c.Path(s.Embedded.DataDir)
	}
	if s.Prefix == "" {
		s.Prefix = "/lucid"
	}
	if !strings.HasPrefix(s.Prefix, "/") {
		diags = append(diags, errAt(s.PrefixRange, "Invalid prefix", fmt.Sprintf("prefix %q must start with '/'.", s.Prefix)))
	}

	if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
		diags = append(diags, errAt(c.API.ListenRange, "Invalid listen address", fmt.Sprintf("%q is not host:port: %v.", c.API.Listen, err)))
	}

	seen := map[string]hcl.Range{}
	for i := range c.Drivers {
		d := &c.Drivers[i]
		if prev, dup := seen[d.Name]; dup {
			diags = append(diags, errAt(d.NameRange, "Duplicate driver", fmt.Sprintf("Driver %q is already defined at %s.", d.Name, pos(prev))))
			continue
		}
		seen[d.Name] = d.NameRange
		d.Plugin = c.Path(d.Plugin)
		if fi, err := os.Stat(d.Plugin); err != nil {
			diags = append(diags, errAt(d.PluginRange, "Driver plugin not found", fmt.Sprintf("No executable at %s. Build it first (make build) or fix the path.", d.Plugin)))
		} else if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			diags = append(diags, errAt(d.PluginRange, "Driver plugin not executable", fmt.Sprintf("%s is not an executable file.", d.Plugin)))
		}
		if d.Checksum != "" && !strings.HasPrefix(d.Checksum, "sha256:") {
			diags = append(diags, errAt(d.ChecksumRange, "Invalid checksum", "checksum must look like \"sha256:<64 hex digits>\"."))
		}
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
		p.Module = c.Path(p.Module)
		if fi, err := os.Stat(p.Module); err != nil {
			diags = append(diags, errAt(p.ModuleRange, "Policy module not found", fmt.Sprintf("No file at %s. Build it first (make build) or fix the path.", p.Module)))
		} else if fi.IsDir() {
			diags = append(diags, errAt(p.ModuleRange, "Policy module is a directory", p.Module))
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
		p.Timeout = 100 * time.Millisecond
		if p.TimeoutStr != "" {
			p.Timeout = duration(p.TimeoutStr, p.TimeoutRange, &diags)
		}
		if p.MemoryMiB < 0 {
			diags = append(diags, errAt(p.DefRange, "Invalid memory_mib", "memory_mib must be positive."))
		}
	}

	if c.Reconciler == nil {
		c.Reconciler = &Reconciler{}
	}
	c.Reconciler.Interval = 30 * time.Second
	if c.Reconciler.IntervalStr != "" {
		c.Reconciler.Interval = duration(c.Reconciler.IntervalStr, c.Reconciler.IntervalRange, &diags)
	}
	return diags
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
