package config

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/bcrypt"
)

// Roles a user may hold in a project, weakest first: a reader reads, a
// member also acts on its project's instances, an admin acts on every
// project's and reads the native API.
const (
	RoleReader = "reader"
	RoleMember = "member"
	RoleAdmin  = "admin"
)

// AdminProject is the project of the admin user Lucid creates on first
// start; it exists whether or not a project block declares it.
const AdminProject = "admin"

// Auth is the auth block: whether requests must carry a token, and for how
// long a token is valid.
type Auth struct {
	// Enabled is enabled as written; nil (unset) means true. Auth may be
	// off only while the API listens on loopback.
	Enabled      *bool     `hcl:"enabled,optional"`
	EnabledRange hcl.Range `hcl:"enabled,attr_range"`
	TokenTTLStr  string    `hcl:"token_ttl,optional"`
	TokenTTLRng  hcl.Range `hcl:"token_ttl,attr_range"`
	// CloudsYAML is where the first start writes the admin's clouds.yaml,
	// resolved against the config's directory; "" (unset) means
	// clouds.yaml beside the embedded store's data_dir (data/clouds.yaml
	// in the default config), or beside the config file for a cluster.
	// See Config.CloudsYAMLPath.
	CloudsYAML      string    `hcl:"clouds_yaml,optional"`
	CloudsYAMLRange hcl.Range `hcl:"clouds_yaml,attr_range"`
	// MetricsPublic lets /metrics be read without a token; unset means
	// only admins may read it.
	MetricsPublic *bool `hcl:"metrics_public,optional"`

	// TokenTTL is how long an issued token is valid, whole seconds (etcd
	// leases count seconds), at least 1s; zero (unset) means the identity
	// service's default, 1h.
	TokenTTL time.Duration
}

// Quota are per-project limits. An unset limit is nil; -1 is unlimited,
// as in Nova.
type Quota struct {
	Instances      *int      `hcl:"instances,optional"`
	InstancesRange hcl.Range `hcl:"instances,attr_range"`
	Cores          *int      `hcl:"cores,optional"`
	CoresRange     hcl.Range `hcl:"cores,attr_range"`
	RAMMB          *int      `hcl:"ram_mb,optional"`
	RAMMBRange     hcl.Range `hcl:"ram_mb,attr_range"`
}

// Project is a project block: a tenant that owns instances, with its own
// quota overrides.
type Project struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	Quota     *Quota    `hcl:"quota,block"`
}

// User is a user block: how the user proves who it is and what it may do
// in which project. Exactly one of password_hash and password_file.
type User struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	// PasswordHashStr is a bcrypt hash ("$2a$…", as htpasswd -B or
	// `lucid` itself make them).
	PasswordHashStr   string    `hcl:"password_hash,optional"`
	PasswordHashRange hcl.Range `hcl:"password_hash,attr_range"`
	// PasswordFile names a secret file holding the password itself (one
	// line; a trailing newline is dropped), such as a mounted secret.
	PasswordFile      string         `hcl:"password_file,optional"`
	PasswordFileRange hcl.Range      `hcl:"password_file,attr_range"`
	RolesExpr         hcl.Expression `hcl:"roles,optional"`
	DefRange          hcl.Range      `hcl:",def_range"`

	// PasswordHash is the bcrypt hash to check passwords against: the
	// password_hash as written, or one made at load from password_file's
	// content (nil when file checks were skipped).
	PasswordHash []byte
	// Roles maps a project to the user's role in it.
	Roles map[string]string
}

// AuthEnabled says whether requests must carry a token (default: yes).
func (c *Config) AuthEnabled() bool {
	return c.Auth == nil || c.Auth.Enabled == nil || *c.Auth.Enabled
}

// MetricsPublic says whether /metrics may be read without a token.
func (c *Config) MetricsPublic() bool {
	return c.Auth != nil && c.Auth.MetricsPublic != nil && *c.Auth.MetricsPublic
}

// TokenTTL is auth.token_ttl, zero when unset.
func (c *Config) TokenTTL() time.Duration {
	if c.Auth == nil {
		return 0
	}
	return c.Auth.TokenTTL
}

// CloudsYAMLPath is where the admin's clouds.yaml is written on first
// start and where the lucid CLI looks for it: auth.clouds_yaml, else
// clouds.yaml beside the embedded store's data_dir (so data/clouds.yaml
// for data/etcd), else clouds.yaml beside the config file.
func (c *Config) CloudsYAMLPath() string {
	if c.Auth != nil && c.Auth.CloudsYAML != "" {
		return c.Auth.CloudsYAML
	}
	if e := c.Store.Embedded; e != nil && e.DataDir != "" {
		return filepath.Join(filepath.Dir(e.DataDir), "clouds.yaml")
	}
	return filepath.Join(c.Dir, "clouds.yaml")
}

// Project returns the project block called name, or nil.
func (c *Config) Project(name string) *Project {
	for i := range c.Projects {
		if c.Projects[i].Name == name {
			return &c.Projects[i]
		}
	}
	return nil
}

// Limits are the effective limits of a project, each -1 when unlimited.
type Limits struct {
	Instances, Cores, RAMMB int
}

// QuotaFor is project's limits: its own quota block's values, else the
// top-level quota block's, else unlimited (-1).
func (c *Config) QuotaFor(project string) Limits {
	l := Limits{-1, -1, -1}
	apply := func(q *Quota) {
		if q == nil {
			return
		}
		for _, f := range []struct {
			v   *int
			dst *int
		}{{q.Instances, &l.Instances}, {q.Cores, &l.Cores}, {q.RAMMB, &l.RAMMB}} {
			if f.v != nil {
				*f.dst = *f.v
			}
		}
	}
	apply(c.Quota)
	if p := c.Project(project); p != nil {
		apply(p.Quota)
	}
	return l
}

// validateIdentity checks the auth, quota, project and user blocks.
func (c *Config) validateIdentity(o Options) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if c.Auth == nil {
		c.Auth = &Auth{}
	}
	a := c.Auth
	if a.TokenTTLStr != "" || set(a.TokenTTLRng) {
		if d := duration(a.TokenTTLStr, a.TokenTTLRng, &diags); d > 0 {
			if d%time.Second != 0 {
				diags = append(diags, errAt(a.TokenTTLRng, "Invalid token_ttl", fmt.Sprintf("token_ttl %q is not a whole number of seconds; tokens live under etcd leases, which count seconds.", a.TokenTTLStr)))
			} else {
				a.TokenTTL = d
			}
		}
	}
	if set(a.CloudsYAMLRange) {
		if a.CloudsYAML == "" {
			diags = append(diags, errAt(a.CloudsYAMLRange, "Empty clouds_yaml", "Remove clouds_yaml to write clouds.yaml beside the store's data, or name a file."))
		}
		a.CloudsYAML = c.Path(a.CloudsYAML)
	}
	if !c.AuthEnabled() {
		if host, _, err := net.SplitHostPort(c.API.Listen); err == nil && !loopback(host) {
			diags = append(diags, errAt(a.EnabledRange, "Auth disabled on a public listener",
				fmt.Sprintf("api.listen %q is not a loopback address, so anyone who reaches it could act as admin without a token. Enable auth, or listen on 127.0.0.1 or [::1].", c.API.Listen)))
		}
	}

	diags = append(diags, c.Quota.validate()...)
	projects := map[string]hcl.Range{}
	for i := range c.Projects {
		p := &c.Projects[i]
		if msg := badID(p.Name); msg != "" {
			diags = append(diags, errAt(p.NameRange, "Invalid project name", fmt.Sprintf("project %q %s.", p.Name, msg)))
			continue
		}
		if prev, dup := projects[p.Name]; dup {
			diags = append(diags, errAt(p.NameRange, "Duplicate project", fmt.Sprintf("Project %q is already defined at %s.", p.Name, pos(prev))))
			continue
		}
		projects[p.Name] = p.NameRange
		diags = append(diags, p.Quota.validate()...)
	}

	users := map[string]hcl.Range{}
	for i := range c.Users {
		u := &c.Users[i]
		if msg := badID(u.Name); msg != "" {
			diags = append(diags, errAt(u.NameRange, "Invalid user name", fmt.Sprintf("user %q %s.", u.Name, msg)))
			continue
		}
		if prev, dup := users[u.Name]; dup {
			diags = append(diags, errAt(u.NameRange, "Duplicate user", fmt.Sprintf("User %q is already defined at %s.", u.Name, pos(prev))))
			continue
		}
		users[u.Name] = u.NameRange
		diags = append(diags, c.validatePassword(u, o)...)
		diags = append(diags, u.validateRoles(projects)...)
	}
	return diags
}

// loopback reports whether host names only this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (q *Quota) validate() hcl.Diagnostics {
	if q == nil {
		return nil
	}
	var diags hcl.Diagnostics
	for _, f := range []struct {
		name string
		v    *int
		rng  hcl.Range
	}{{"instances", q.Instances, q.InstancesRange}, {"cores", q.Cores, q.CoresRange}, {"ram_mb", q.RAMMB, q.RAMMBRange}} {
		if f.v != nil && *f.v < -1 {
			diags = append(diags, errAt(f.rng, "Invalid "+f.name, fmt.Sprintf("%s must be at least 0, or -1 for unlimited; got %d.", f.name, *f.v)))
		}
	}
	return diags
}

func (c *Config) validatePassword(u *User, o Options) hcl.Diagnostics {
	hashSet, fileSet := set(u.PasswordHashRange), set(u.PasswordFileRange)
	switch {
	case hashSet && fileSet:
		return hcl.Diagnostics{errAt(u.PasswordFileRange, "Conflicting password settings",
			fmt.Sprintf("User %q has both password_hash and password_file; keep one.", u.Name))}
	case !hashSet && !fileSet:
		return hcl.Diagnostics{errAt(u.NameRange, "Missing password",
			fmt.Sprintf("User %q needs password_hash = \"$2a$…\" (a bcrypt hash) or password_file = \"…\" (a file holding the password). A plaintext password never goes into the config.", u.Name))}
	case hashSet:
		if _, err := bcrypt.Cost([]byte(u.PasswordHashStr)); err != nil {
			return hcl.Diagnostics{errAt(u.PasswordHashRange, "Invalid password_hash",
				fmt.Sprintf("password_hash of user %q is not a bcrypt hash (%v). Make one with `htpasswd -nbBC 10 \"\" PASSWORD | cut -c2-`.", u.Name, err))}
		}
		u.PasswordHash = []byte(u.PasswordHashStr)
		return nil
	}
	u.PasswordFile = c.Path(u.PasswordFile)
	if o.SkipFileChecks {
		return nil
	}
	b, err := os.ReadFile(u.PasswordFile)
	if err != nil {
		return hcl.Diagnostics{errAt(u.PasswordFileRange, "Cannot read password_file", fmt.Sprintf("User %q: %v.", u.Name, err))}
	}
	pw := bytes.TrimRight(b, "\r\n")
	switch {
	case len(pw) == 0:
		return hcl.Diagnostics{errAt(u.PasswordFileRange, "Empty password_file", fmt.Sprintf("%s is empty; it must hold user %q's password.", u.PasswordFile, u.Name))}
	case len(pw) > 72:
		return hcl.Diagnostics{errAt(u.PasswordFileRange, "Password too long", fmt.Sprintf("%s holds %d bytes; bcrypt uses at most 72.", u.PasswordFile, len(pw)))}
	}
	h, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
	if err != nil {
		return hcl.Diagnostics{errAt(u.PasswordFileRange, "Cannot hash password", err.Error())}
	}
	u.PasswordHash = h
	return nil
}

// validateRoles reads roles = { "<project>" = "<role>" }: each project
// must be declared (or be the admin project), each role one of the three.
func (u *User) validateRoles(projects map[string]hcl.Range) hcl.Diagnostics {
	u.Roles = map[string]string{}
	if u.RolesExpr == nil || u.RolesExpr.Range().Start == u.RolesExpr.Range().End {
		return hcl.Diagnostics{errAt(u.DefRange, "Missing roles", fmt.Sprintf("User %q has no roles = { \"<project>\" = \"member\" }, so it could do nothing.", u.Name))}
	}
	pairs, ds := hcl.ExprMap(u.RolesExpr)
	if ds.HasErrors() {
		return hcl.Diagnostics{errAt(u.RolesExpr.Range(), "Invalid roles", "roles must be a map from project to role, e.g. { \"web\" = \"member\" }.")}
	}
	var diags hcl.Diagnostics
	known := []string{AdminProject}
	for p := range projects {
		known = append(known, p)
	}
	sort.Strings(known)
	for _, kv := range pairs {
		rng := hcl.RangeBetween(kv.Key.Range(), kv.Value.Range())
		k, ds := kv.Key.Value(nil)
		if ds.HasErrors() || k.IsNull() || !k.IsKnown() || k.Type() != cty.String {
			diags = append(diags, errAt(kv.Key.Range(), "Invalid roles key", "A key must be a project name."))
			continue
		}
		project := k.AsString()
		if _, ok := projects[project]; !ok && project != AdminProject {
			diags = append(diags, errAt(kv.Key.Range(), "Unknown project in roles", fmt.Sprintf("%q is not a project; declare project %q { } or use one of %s.", project, project, strings.Join(known, ", "))))
			continue
		}
		if _, dup := u.Roles[project]; dup {
			diags = append(diags, errAt(rng, "Duplicate role", fmt.Sprintf("User %q already has a role in %q.", u.Name, project)))
			continue
		}
		v, ds := kv.Value.Value(nil)
		if ds.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
			diags = append(diags, errAt(kv.Value.Range(), "Invalid role", fmt.Sprintf("The role in %q must be a string: %q, %q or %q.", project, RoleAdmin, RoleMember, RoleReader)))
			continue
		}
		role := v.AsString()
		if role != RoleAdmin && role != RoleMember && role != RoleReader {
			diags = append(diags, errAt(kv.Value.Range(), "Unknown role", fmt.Sprintf("%q is not a role; use %q, %q or %q.", role, RoleAdmin, RoleMember, RoleReader)))
			continue
		}
		u.Roles[project] = role
	}
	return diags
}
