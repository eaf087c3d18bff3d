package config_test

import (
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/internal/testenv"
)

// The tls blocks, API limits and driver environment decode to these
// values; relative TLS paths resolve against the config's directory.
func TestHardeningBlocksValid(t *testing.T) {
	pki := testenv.NewPKI(t)
	dir, _ := filepath.Abs("testdata")
	storeTLS := fmt.Sprintf("  tls {\n    ca_file   = %q\n    cert_file = %q\n    key_file  = %q\n  }\n", pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)
	cases := []struct {
		name string
		src  string
		got  func(*config.Config) any
		want any
	}{
		{"api tls", fmt.Sprintf("api {\n  listen = \"127.0.0.1:8774\"\n  tls {\n    cert_file = %q\n    key_file  = %q\n  }\n}", pki.CertFile, pki.KeyFile),
			func(c *config.Config) any { return [2]string{c.API.TLS.CertFile, c.API.TLS.KeyFile} }, [2]string{pki.CertFile, pki.KeyFile}},
		{"api tls relative paths, unchecked", "api {\n  listen = \"127.0.0.1:8774\"\n  tls {\n    cert_file = \"tls/api.crt\"\n    key_file  = \"tls/api.key\"\n  }\n}",
			func(c *config.Config) any { return [2]string{c.API.TLS.CertFile, c.API.TLS.KeyFile} },
			[2]string{filepath.Join(dir, "tls/api.crt"), filepath.Join(dir, "tls/api.key")}},
		{"api without tls", ``, func(c *config.Config) any { return c.API.TLS == nil }, true},
		{"api limits", "api {\n  listen              = \"127.0.0.1:8774\"\n  read_header_timeout = \"2s\"\n  read_timeout        = \"5s\"\n  write_timeout       = \"1m\"\n  idle_timeout        = \"90s\"\n  max_connections     = 64\n}",
			func(c *config.Config) any {
				return []any{c.API.ReadHeaderTimeout, c.API.ReadTimeout, c.API.WriteTimeout, c.API.IdleTimeout, c.API.MaxConnections}
			},
			[]any{2 * time.Second, 5 * time.Second, time.Minute, 90 * time.Second, 64}},
		{"api limits unset", ``,
			func(c *config.Config) any {
				return []any{c.API.ReadHeaderTimeout, c.API.ReadTimeout, c.API.WriteTimeout, c.API.IdleTimeout, c.API.MaxConnections}
			},
			[]any{time.Duration(0), time.Duration(0), time.Duration(0), time.Duration(0), 0}},
		{"rate_limit", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 50\n    burst               = 100\n  }\n}",
			func(c *config.Config) any { return []any{c.API.RateLimit.RequestsPerSecond, c.API.RateLimit.Burst} }, []any{50.0, 100}},
		{"rate_limit fraction, burst unset", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit { requests_per_second = 0.5 }\n}",
			func(c *config.Config) any { return []any{c.API.RateLimit.RequestsPerSecond, c.API.RateLimit.Burst} }, []any{0.5, 0}},
		{"rate_limit off", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 0\n    burst               = 10\n  }\n}",
			func(c *config.Config) any { return []any{c.API.RateLimit.RequestsPerSecond, c.API.RateLimit.Burst} }, []any{0.0, 10}},
		{"rate_limit unset", ``, func(c *config.Config) any { return c.API.RateLimit == nil }, true},
		{"max_delay", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 5\n    max_delay           = \"250ms\"\n  }\n}",
			func(c *config.Config) any { return *c.API.RateLimit.MaxDelay }, 250 * time.Millisecond},
		{"max_delay zero", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 5\n    max_delay           = \"0s\"\n  }\n}",
			func(c *config.Config) any { return *c.API.RateLimit.MaxDelay }, time.Duration(0)},
		{"max_delay unset", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit { requests_per_second = 5 }\n}",
			func(c *config.Config) any { return c.API.RateLimit.MaxDelay == nil }, true},
		{"listen on localhost", "api { listen = \"localhost:8774\" }", func(c *config.Config) any { return c.API.Listen }, "localhost:8774"},
		{"listen on all IPv6", "api { listen = \"[::]:8774\" }", func(c *config.Config) any { return c.API.Listen }, "[::]:8774"},
		{"cluster with client certificate", "store {\n  endpoints = [\"https://127.0.0.1:2379\", \"https://127.0.0.2:2379\"]\n" + storeTLS + "}",
			func(c *config.Config) any { t := c.Store.TLS; return [3]string{t.CAFile, t.CertFile, t.KeyFile} },
			[3]string{pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile}},
		{"cluster trusting one CA only", fmt.Sprintf("store {\n  endpoints = [\"https://127.0.0.1:2379\"]\n  tls { ca_file = %q }\n}", pki.CAFile),
			func(c *config.Config) any { t := c.Store.TLS; return [3]string{t.CAFile, t.CertFile, t.KeyFile} }, [3]string{pki.CAFile, "", ""}},
		{"cluster over https with system roots", "store {\n  endpoints = [\"https://etcd.example:2379\"]\n}",
			func(c *config.Config) any { return c.Store.TLS == nil }, true},
		{"cluster on a unix socket", "store {\n  endpoints = [\"unix:///var/lib/lucid/etcd/etcd.sock\"]\n}",
			func(c *config.Config) any { return c.Store.Endpoints }, []string{"unix:///var/lib/lucid/etcd/etcd.sock"}},
		{"embedded exposed", fmt.Sprintf("store {\n  embedded {\n    data_dir   = \"d\"\n    client_url = \"https://10.0.0.1:2379\"\n  }\n  tls {\n    ca_file   = %q\n    cert_file = %q\n    key_file  = %q\n  }\n}", pki.CAFile, pki.CertFile, pki.KeyFile),
			func(c *config.Config) any {
				return []string{c.Store.Embedded.ClientURL, c.Store.TLS.CAFile, c.Store.TLS.CertFile}
			},
			[]string{"https://10.0.0.1:2379", pki.CAFile, pki.CertFile}},
		{"driver env", "driver \"qemu\" {\n  plugin   = \"bin/plugin\"\n  env      = { LIBVIRT_DEFAULT_URI = \"qemu:///system\", \"_X1\" = \"\", N = 5 }\n  pass_env = [\"HOME\", \"LANG\"]\n}",
			func(c *config.Config) any { d := c.Drivers[0]; return []any{d.Env, d.PassEnv} },
			[]any{map[string]string{"LIBVIRT_DEFAULT_URI": "qemu:///system", "_X1": "", "N": "5"}, []string{"HOME", "LANG"}}},
		{"driver without env", ``, func(c *config.Config) any { d := c.Drivers[0]; return []any{d.Env == nil, d.PassEnv == nil} }, []any{true, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := config.Options{SkipFileChecks: strings.Contains(tc.name, "unchecked")}
			c, err := opts.Parse(filepath.Join("testdata", "snippet.hcl"), []byte(withDefaults(tc.src)))
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.got(c); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// withDefaults is parseSnippet's source, for Options.Parse.
func withDefaults(src string) string {
	if !strings.Contains(src, "store {") {
		src += "\nstore {\n  embedded { data_dir = \"data/etcd\" }\n}\n"
	}
	if !strings.Contains(src, "api {") {
		src += "\napi { listen = \"127.0.0.1:8774\" }\n"
	}
	return src + "\ndriver \"fake\" { plugin = \"bin/plugin\" }\n"
}

// Each problem is one diagnostic at the attribute at fault, naming the
// file or value.
func TestHardeningBlocksInvalid(t *testing.T) {
	pki := testenv.NewPKI(t)
	dir, _ := filepath.Abs("testdata")
	missing := filepath.Join(t.TempDir(), "missing.pem")
	expiredCert, expiredKey := pki.IssueValid(t, "expired", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), x509.ExtKeyUsageServerAuth)
	apiTLS := func(cert, key string) string {
		return fmt.Sprintf("api {\n  listen = \"127.0.0.1:8774\"\n  tls {\n    cert_file = %q\n    key_file  = %q\n  }\n}", cert, key)
	}
	cluster := func(endpoints, tls string) string {
		return "store {\n  endpoints = [" + endpoints + "]\n  tls {\n" + tls + "  }\n}"
	}
	exposed := func(url, tls string) string {
		return "store {\n  embedded {\n    data_dir   = \"d\"\n    client_url = \"" + url + "\"\n  }\n" + tls + "}"
	}
	caOnly := fmt.Sprintf("    ca_file = %q\n", pki.CAFile)
	all := fmt.Sprintf("  tls {\n    ca_file   = %q\n    cert_file = %q\n    key_file  = %q\n  }\n", pki.CAFile, pki.CertFile, pki.KeyFile)
	const qemu = "driver \"qemu\" {\n  plugin = \"bin/plugin\"\n"
	cases := []struct {
		name    string
		src     string
		at      string // line:col
		summary string
		detail  string
	}{
		{"listen port too big", "api { listen = \"127.0.0.1:99999\" }", "1:7", "Invalid listen address", `"127.0.0.1:99999": the port must be a number from 0 to 65535, not "99999".`},
		{"listen port a name", "api { listen = \"127.0.0.1:http\" }", "1:7", "Invalid listen address", `"127.0.0.1:http": the port must be a number from 0 to 65535, not "http".`},
		{"read_timeout zero", "api {\n  listen       = \"127.0.0.1:8774\"\n  read_timeout = \"0s\"\n}", "3:3", "Invalid duration", `"0s" is not a positive duration such as "200ms" or "30s".`},
		{"idle_timeout bad", "api {\n  listen       = \"127.0.0.1:8774\"\n  idle_timeout = \"long\"\n}", "3:3", "Invalid duration", `"long" is not a positive duration such as "200ms" or "30s".`},
		{"max_connections zero", "api {\n  listen          = \"127.0.0.1:8774\"\n  max_connections = 0\n}", "3:3", "Invalid max_connections", "max_connections must be at least 1; got 0."},
		{"requests_per_second negative", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = -5\n  }\n}", "4:5", "Invalid requests_per_second",
			"requests_per_second must be a finite number of at least 0 (0 turns the limit off); got -5."},
		{"burst negative", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 5\n    burst               = -1\n  }\n}", "5:5", "Invalid burst", "burst must be at least 1; got -1."},
		{"burst zero", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 5\n    burst               = 0\n  }\n}", "5:5", "Invalid burst", "burst must be at least 1; got 0."},
		{"burst fraction", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 5\n    burst               = 1.5\n  }\n}", "5:27", "Unsuitable value type", "Unsuitable value: value must be a whole number, between -9223372036854775808 and 9223372036854775807"},
		{"requests_per_second a string", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit { requests_per_second = \"fast\" }\n}", "3:39", "Unsuitable value type", "Unsuitable value: a number is required"},
		{"max_delay negative", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 5\n    max_delay           = \"-1s\"\n  }\n}", "5:5", "Invalid max_delay",
			`"-1s" is not a duration from "0s" (refuse at once) to "10s", such as "1s".`},
		{"max_delay too long", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit {\n    requests_per_second = 5\n    max_delay           = \"1m\"\n  }\n}", "5:5", "Invalid max_delay",
			`"1m" is not a duration from "0s" (refuse at once) to "10s", such as "1s".`},
		{"rate_limit unknown key", "api {\n  listen = \"127.0.0.1:8774\"\n  rate_limit { per_user = 5 }\n}", "3:16", "Unsupported argument", `An argument named "per_user" is not expected here.`},

		{"api cert missing", apiTLS(missing, pki.KeyFile), "4:5", "Cannot read certificate", "open " + missing + ": no such file or directory."},
		{"api key missing", apiTLS(pki.CertFile, missing), "5:5", "Cannot read key", "open " + missing + ": no such file or directory."},
		{"api cert is a key", apiTLS(pki.KeyFile, pki.KeyFile), "4:5", "Invalid certificate", pki.KeyFile + ` holds a "PRIVATE KEY" block, not a certificate.`},
		{"api cert not PEM", apiTLS(filepath.Join(dir, "valid.hcl"), pki.KeyFile), "4:5", "Invalid certificate", filepath.Join(dir, "valid.hcl") + " holds no PEM certificate."},
		{"api key of another certificate", apiTLS(pki.CertFile, pki.ClientKeyFile), "5:5", "Invalid key",
			pki.ClientKeyFile + " with certificate " + pki.CertFile + ": tls: private key does not match public key."},
		{"api certificate expired", apiTLS(expiredCert, expiredKey), "4:5", "Certificate not valid now", expiredCert + " is valid from 2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z."},
		{"api tls without key_file", fmt.Sprintf("api {\n  listen = \"127.0.0.1:8774\"\n  tls {\n    cert_file = %q\n  }\n}", pki.CertFile), "3:7", "Missing required argument", `The argument "key_file" is required, but no definition was found.`},
		{"api tls with ca_file", fmt.Sprintf("api {\n  listen = \"127.0.0.1:8774\"\n  tls {\n    cert_file = %q\n    key_file  = %q\n    ca_file   = %q\n  }\n}", pki.CertFile, pki.KeyFile, pki.CAFile),
			"6:5", "Unsupported argument", `An argument named "ca_file" is not expected here.`},

		{"cluster CA missing", cluster(`"https://127.0.0.1:2379"`, fmt.Sprintf("    ca_file = %q\n", missing)), "4:5", "Cannot read CA file", "open " + missing + ": no such file or directory."},
		{"cluster CA is a key", cluster(`"https://127.0.0.1:2379"`, fmt.Sprintf("    ca_file = %q\n", pki.KeyFile)), "4:5", "Invalid CA file", pki.KeyFile + ` holds a "PRIVATE KEY" block, not a certificate.`},
		{"cluster key of another certificate", cluster(`"https://127.0.0.1:2379"`, fmt.Sprintf("    cert_file = %q\n    key_file  = %q\n", pki.ClientCertFile, pki.KeyFile)), "5:5", "Invalid key",
			pki.KeyFile + " with certificate " + pki.ClientCertFile + ": tls: private key does not match public key."},
		{"cluster cert without key", cluster(`"https://127.0.0.1:2379"`, fmt.Sprintf("    cert_file = %q\n", pki.ClientCertFile)), "3:3", "Incomplete client certificate", "Set both cert_file and key_file (Lucid's client certificate), or neither."},
		{"cluster tls over http", cluster(`"https://127.0.0.1:2379", "http://127.0.0.2:2379"`, caOnly), "2:3", "Endpoint without TLS",
			`"http://127.0.0.2:2379" is not https, so the tls block would not be used for it: etcd's client connects to it in the clear.`},
		{"cluster endpoint scheme", "store {\n  endpoints = [\"ftp://127.0.0.1:2379\"]\n}", "2:3", "Invalid endpoint", `"ftp://127.0.0.1:2379": the scheme must be https, http, unix or unixs.`},
		{"cluster endpoint not a URL", "store {\n  endpoints = [\"127.0.0.1:2379\"]\n}", "2:3", "Invalid endpoint", `"127.0.0.1:2379" is not a URL such as https://10.0.0.1:2379.`},

		{"embedded tls unused", "store {\n  embedded { data_dir = \"d\" }\n" + all + "}", "3:3", "Unused tls block",
			`An embedded member without client_url is reached only in-process and through its unix socket; tls is for endpoints, or for an embedded client_url = "https://host:port".`},
		{"embedded client_url http", exposed("http://0.0.0.0:2379", all), "4:5", "Invalid client_url",
			`client_url "http://0.0.0.0:2379" must be https://host:port: a plain http port would let anyone who can reach it write the store, and local tools use the unix socket in data_dir.`},
		{"embedded client_url without tls", exposed("https://10.0.0.1:2379", ""), "4:5", "client_url needs TLS",
			"Exposing the embedded member requires client certificates: add tls { ca_file = ..., cert_file = ..., key_file = ... } to the store block (ca_file signs the client certificates accepted; cert_file and key_file are the member's)."},
		{"embedded client_url without CA", exposed("https://10.0.0.1:2379", fmt.Sprintf("  tls {\n    cert_file = %q\n    key_file  = %q\n  }\n", pki.CertFile, pki.KeyFile)), "6:3", "Missing ca_file",
			"An embedded member exposed at https://10.0.0.1:2379 needs ca_file (the CA of the client certificates it accepts), cert_file and key_file (its own certificate)."},
		{"embedded member key missing", exposed("https://10.0.0.1:2379", fmt.Sprintf("  tls {\n    ca_file   = %q\n    cert_file = %q\n    key_file  = %q\n  }\n", pki.CAFile, pki.CertFile, missing)), "9:5", "Cannot read key",
			"open " + missing + ": no such file or directory."},

		{"env name starts with a digit", qemu + "  env = { \"1X\" = \"a\" }\n}", "3:11", "Invalid env name", `"1X" is not a variable name (a letter or '_', then letters, digits and '_').`},
		{"env name with '='", qemu + "  env = { \"A=B\" = \"a\" }\n}", "3:11", "Invalid env name", `"A=B" is not a variable name (a letter or '_', then letters, digits and '_').`},
		{"env value a list", qemu + "  env = { A = [\"a\"] }\n}", "3:11", "Invalid env value", "A: a value is a string."},
		{"env not a map", qemu + "  env = \"A=B\"\n}", "3:9", "Invalid env", `env must be a map of variable names to strings, e.g. { LIBVIRT_DEFAULT_URI = "qemu:///system" }.`},
		{"env twice", qemu + "  env = { A = \"1\", \"A\" = \"2\" }\n}", "3:20", "Duplicate env variable", "A is already set at testdata/snippet.hcl:3:11."},
		{"pass_env bad name", qemu + "  pass_env = [\"HOME\", \"MY-VAR\"]\n}", "3:3", "Invalid pass_env name", `"MY-VAR" is not a variable name (a letter or '_', then letters, digits and '_').`},
		{"pass_env and env", qemu + "  env      = { HOME = \"/root\" }\n  pass_env = [\"HOME\"]\n}", "4:3", "Duplicate env variable",
			"HOME is already set at testdata/snippet.hcl:3:16; pass it or set it, not both."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantDiagnostic(t, tc.src, tc.at, tc.summary, tc.detail) })
	}
}

// With file checks skipped, TLS files that do not exist are not
// reported (the config may be for another machine).
func TestTLSFilesSkipped(t *testing.T) {
	src := withDefaults("api {\n  listen = \"127.0.0.1:8774\"\n  tls {\n    cert_file = \"/nowhere/api.crt\"\n    key_file  = \"/nowhere/api.key\"\n  }\n}\n" +
		"store {\n  endpoints = [\"https://127.0.0.1:2379\"]\n  tls { ca_file = \"/nowhere/ca.crt\" }\n}")
	if _, err := (config.Options{SkipFileChecks: true}).Parse("testdata/snippet.hcl", []byte(src)); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse("testdata/snippet.hcl", []byte(src)); err == nil || strings.Count(err.Error(), "error:") != 3 {
		t.Fatalf("with file checks: %v, want the certificate, the key and the CA reported", err)
	}
}

// CheckListen binds the address briefly: a free one passes and stays
// free, a busy one or one this machine lacks is a diagnostic at the
// listen line that says which.
func TestCheckListen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	for _, tc := range []struct {
		name, listen string
		want         string // "" = no error
	}{
		{"free", freeAddr, ""},
		{"any port", "127.0.0.1:0", ""},
		{"busy", busy.Addr().String(), busy.Addr().String() + " is in use: another process (a running lucid serve?) listens on it."},
		{"not this machine's", "192.0.2.1:8774", "192.0.2.1:8774: no network interface of this machine has that address."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseSnippet(fmt.Sprintf("api { listen = %q }", tc.listen))
			if err != nil {
				t.Fatal(err)
			}
			err = c.CheckListen()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				// Released again: lucid serve can bind it now.
				ln, err := net.Listen("tcp", tc.listen)
				if err != nil {
					t.Fatalf("the address was not released: %v", err)
				}
				ln.Close()
				return
			}
			e, ok := config.AsError(err)
			if !ok || len(e.Diags) != 1 {
				t.Fatalf("got %v, want one diagnostic", err)
			}
			d := e.Diags[0]
			if at := fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column); at != "1:7" || d.Summary != "Cannot listen" || d.Detail != tc.want {
				t.Fatalf("got %s %q %q, want 1:7 \"Cannot listen\" %q", at, d.Summary, d.Detail, tc.want)
			}
		})
	}
}
