package config_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lucid-project/lucid/core/config"
)

// A bcrypt hash of "secret" at the lowest cost, for the snippets.
const hash = "$2a$04$Amdo4yvimtcahp0VMOD8ueuPuPgMmxGTGPnBuoYY6sLRkR98dHQEi"

// TestIdentityValid decodes the auth, quota, project and user blocks into
// the values the identity service and the quotas use.
func TestIdentityValid(t *testing.T) {
	dir, _ := filepath.Abs("testdata")
	intp := func(v int) *int { return &v }
	cases := []struct {
		name string
		src  string
		got  func(*config.Config) any
		want any
	}{
		{"auth unset", ``, func(c *config.Config) any { return []any{c.AuthEnabled(), c.TokenTTL(), c.MetricsPublic()} }, []any{true, time.Duration(0), false}},
		{"auth", "auth {\n  enabled        = true\n  token_ttl      = \"2h\"\n  metrics_public = true\n}",
			func(c *config.Config) any { return []any{c.AuthEnabled(), c.TokenTTL(), c.MetricsPublic()} }, []any{true, 2 * time.Hour, true}},
		{"auth off on loopback", "auth { enabled = false }", func(c *config.Config) any { return c.AuthEnabled() }, false},
		{"auth off on localhost", "auth { enabled = false }\napi { listen = \"localhost:8774\" }", func(c *config.Config) any { return c.AuthEnabled() }, false},
		{"auth off on ::1", "auth { enabled = false }\napi { listen = \"[::1]:8774\" }", func(c *config.Config) any { return c.AuthEnabled() }, false},
		{"clouds.yaml beside the data", ``, func(c *config.Config) any { return c.CloudsYAMLPath() }, filepath.Join(dir, "data", "clouds.yaml")},
		{"clouds.yaml set", "auth { clouds_yaml = \"secrets/clouds.yaml\" }", func(c *config.Config) any { return c.CloudsYAMLPath() }, filepath.Join(dir, "secrets", "clouds.yaml")},
		{"clouds.yaml for a cluster", "store { endpoints = [\"http://127.0.0.1:2379\"] }", func(c *config.Config) any { return c.CloudsYAMLPath() }, filepath.Join(dir, "clouds.yaml")},
		{"no quota", ``, func(c *config.Config) any { return c.QuotaFor("p") }, config.Limits{Instances: -1, Cores: -1, RAMMB: -1}},
		{"quota defaults and override", "quota {\n  instances = 10\n  cores     = 20\n}\nproject \"p\" {\n  quota {\n    cores  = 4\n    ram_mb = -1\n  }\n}\nproject \"q\" {}",
			func(c *config.Config) any {
				return []config.Limits{c.QuotaFor("p"), c.QuotaFor("q"), c.QuotaFor("admin")}
			},
			[]config.Limits{{Instances: 10, Cores: 4, RAMMB: -1}, {Instances: 10, Cores: 20, RAMMB: -1}, {Instances: 10, Cores: 20, RAMMB: -1}}},
		{"project quota block", "project \"p\" {\n  quota { instances = 0 }\n}", func(c *config.Config) any { return c.Project("p").Quota.Instances }, intp(0)},
		{"user with a hash", "project \"p\" {}\nuser \"u\" {\n  password_hash = \"" + hash + "\"\n  roles = { \"p\" = \"member\", admin = \"reader\" }\n}",
			func(c *config.Config) any { return []any{string(c.Users[0].PasswordHash), c.Users[0].Roles} },
			[]any{hash, map[string]string{"p": "member", "admin": "reader"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseSnippet(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.got(c); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// A password_file holds the password itself; the config keeps only a
// bcrypt hash of it.
func TestPasswordFile(t *testing.T) {
	c, err := parseSnippet("user \"alice\" {\n  password_file = \"secrets/alice.pw\"\n  roles = { admin = \"admin\" }\n}")
	if err != nil {
		t.Fatal(err)
	}
	u := c.Users[0]
	if err := bcrypt.CompareHashAndPassword(u.PasswordHash, []byte("hunter2")); err != nil {
		t.Fatalf("the hash made from the file does not match its password (the newline is not part of it): %v", err)
	}
	s, err := config.Options{SkipFileChecks: true}.Parse(filepath.Join("testdata", "snippet.hcl"),
		[]byte("user \"alice\" {\n  password_file = \"secrets/nope.pw\"\n  roles = { admin = \"admin\" }\n}\nstore {\n  embedded { data_dir = \"d\" }\n}\napi { listen = \"127.0.0.1:1\" }\ndriver \"f\" { plugin = \"x\" }\n"))
	if err != nil || s.Users[0].PasswordHash != nil {
		t.Fatalf("SkipFileChecks should accept a missing password_file and hash nothing: %v", err)
	}
}

// TestIdentityInvalid: each bad value is one diagnostic at its attribute.
func TestIdentityInvalid(t *testing.T) {
	dir, _ := filepath.Abs("testdata")
	user := func(body string) string { return "project \"p\" {}\nuser \"u\" {\n" + body + "}" }
	pw := "  password_hash = \"" + hash + "\"\n"
	cases := []struct {
		name, src, at, summary, detail string
	}{
		{"auth off on a public listener", "auth {\n  enabled = false\n}\napi { listen = \"0.0.0.0:8774\" }", "2:3", "Auth disabled on a public listener",
			`api.listen "0.0.0.0:8774" is not a loopback address, so anyone who reaches it could act as admin without a token. Enable auth, or listen on 127.0.0.1 or [::1].`},
		{"auth off on a host name", "auth {\n  enabled = false\n}\napi { listen = \"lucid.example:8774\" }", "2:3", "Auth disabled on a public listener",
			`api.listen "lucid.example:8774" is not a loopback address, so anyone who reaches it could act as admin without a token. Enable auth, or listen on 127.0.0.1 or [::1].`},
		{"token_ttl fraction", "auth {\n  token_ttl = \"1500ms\"\n}", "2:3", "Invalid token_ttl", `token_ttl "1500ms" is not a whole number of seconds; tokens live under etcd leases, which count seconds.`},
		{"token_ttl bad", "auth {\n  token_ttl = \"forever\"\n}", "2:3", "Invalid duration", `"forever" is not a positive duration such as "200ms" or "30s".`},
		{"clouds_yaml empty", "auth {\n  clouds_yaml = \"\"\n}", "2:3", "Empty clouds_yaml", "Remove clouds_yaml to write clouds.yaml beside the store's data, or name a file."},
		{"quota below -1", "quota {\n  cores = -2\n}", "2:3", "Invalid cores", "cores must be at least 0, or -1 for unlimited; got -2."},
		{"project quota below -1", "project \"p\" {\n  quota {\n    ram_mb = -5\n  }\n}", "3:5", "Invalid ram_mb", "ram_mb must be at least 0, or -1 for unlimited; got -5."},
		{"project name with a slash", "project \"a/b\" {}", "1:9", "Invalid project name", `project "a/b" may not contain '/'.`},
		{"duplicate project", "project \"p\" {}\nproject \"p\" {}", "2:9", "Duplicate project", `Project "p" is already defined at testdata/snippet.hcl:1:9.`},
		{"malformed hash", user("  password_hash = \"$2a$10$short\"\n  roles = { p = \"member\" }\n"), "3:3", "Invalid password_hash",
			"password_hash of user \"u\" is not a bcrypt hash (crypto/bcrypt: hashedSecret too short to be a bcrypted password). Make one with `htpasswd -nbBC 10 \"\" PASSWORD | cut -c2-`."},
		{"plaintext as hash", user("  password_hash = \"hunter2\"\n  roles = { p = \"member\" }\n"), "3:3", "Invalid password_hash",
			"password_hash of user \"u\" is not a bcrypt hash (crypto/bcrypt: hashedSecret too short to be a bcrypted password). Make one with `htpasswd -nbBC 10 \"\" PASSWORD | cut -c2-`."},
		{"no password", user("  roles = { p = \"member\" }\n"), "2:6", "Missing password",
			`User "u" needs password_hash = "$2a$…" (a bcrypt hash) or password_file = "…" (a file holding the password). A plaintext password never goes into the config.`},
		{"both passwords", user(pw + "  password_file = \"secrets/alice.pw\"\n  roles = { p = \"member\" }\n"), "4:3", "Conflicting password settings",
			`User "u" has both password_hash and password_file; keep one.`},
		{"missing password file", user("  password_file = \"secrets/nope.pw\"\n  roles = { p = \"member\" }\n"), "3:3", "Cannot read password_file",
			fmt.Sprintf("User \"u\": open %s/secrets/nope.pw: no such file or directory.", dir)},
		{"empty password file", user("  password_file = \"secrets/empty.pw\"\n  roles = { p = \"member\" }\n"), "3:3", "Empty password_file",
			fmt.Sprintf("%s/secrets/empty.pw is empty; it must hold user \"u\"'s password.", dir)},
		{"unknown project", user(pw + "  roles = { p = \"member\", web = \"member\" }\n"), "4:27", "Unknown project in roles",
			`"web" is not a project; declare project "web" { } or use one of admin, p.`},
		{"unknown role", user(pw + "  roles = { p = \"owner\" }\n"), "4:17", "Unknown role", `"owner" is not a role; use "admin", "member" or "reader".`},
		{"role not a string", user(pw + "  roles = { p = [\"member\"] }\n"), "4:17", "Invalid role", `The role in "p" must be a string: "admin", "member" or "reader".`},
		{"roles not a map", user(pw + "  roles = \"member\"\n"), "4:11", "Invalid roles", `roles must be a map from project to role, e.g. { "web" = "member" }.`},
		{"no roles", user(pw), "2:1", "Missing roles", `User "u" has no roles = { "<project>" = "member" }, so it could do nothing.`},
		{"duplicate user", "user \"u\" {\n" + pw + "  roles = { admin = \"admin\" }\n}\nuser \"u\" {\n" + pw + "  roles = { admin = \"admin\" }\n}", "5:6", "Duplicate user",
			`User "u" is already defined at testdata/snippet.hcl:1:6.`},
		{"user name with a space", "user \"a b\" {\n" + pw + "  roles = { admin = \"admin\" }\n}", "1:6", "Invalid user name", `user "a b" may not contain whitespace.`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantDiagnostic(t, tc.src, tc.at, tc.summary, tc.detail) })
	}
}
