package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// validateAPI checks the api block: the listen address's form (whether it
// can be bound is CheckListen's business), the limits and the TLS files.
func (c *Config) validateAPI(o Options) hcl.Diagnostics {
	var diags hcl.Diagnostics
	a := &c.API
	// A host name is allowed (it must resolve when bound: CheckListen).
	if _, port, err := net.SplitHostPort(a.Listen); err != nil {
		diags = append(diags, errAt(a.ListenRange, "Invalid listen address", fmt.Sprintf("%q is not host:port: %v.", a.Listen, err)))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		diags = append(diags, errAt(a.ListenRange, "Invalid listen address", fmt.Sprintf("%q: the port must be a number from 0 to 65535, not %q.", a.Listen, port)))
	}
	if set(a.MaxLimitRange) {
		atLeast("max_limit", a.MaxLimit, 1, a.MaxLimitRange, &diags)
	}
	for _, d := range []struct {
		s   string
		rng hcl.Range
		v   *time.Duration
	}{
		{a.ReadHeaderTimeoutStr, a.ReadHeaderTimeoutRange, &a.ReadHeaderTimeout},
		{a.ReadTimeoutStr, a.ReadTimeoutRange, &a.ReadTimeout},
		{a.WriteTimeoutStr, a.WriteTimeoutRange, &a.WriteTimeout},
		{a.IdleTimeoutStr, a.IdleTimeoutRange, &a.IdleTimeout},
	} {
		if d.s != "" || set(d.rng) {
			*d.v = duration(d.s, d.rng, &diags)
		}
	}
	atLeast("max_connections", a.MaxConnections, 1, a.MaxConnectionsRange, &diags)
	if rl := a.RateLimit; rl != nil {
		if v := rl.RequestsPerSecond; !(v >= 0) || math.IsInf(v, 0) {
			diags = append(diags, errAt(rl.RequestsPerSecondRange, "Invalid requests_per_second",
				fmt.Sprintf("requests_per_second must be a finite number of at least 0 (0 turns the limit off); got %v.", v)))
		}
		atLeast("burst", rl.Burst, 1, rl.BurstRange, &diags)
		if set(rl.MaxDelayRange) {
			d, err := time.ParseDuration(rl.MaxDelayStr)
			if err != nil || d < 0 || d > 10*time.Second {
				diags = append(diags, errAt(rl.MaxDelayRange, "Invalid max_delay",
					fmt.Sprintf("%q is not a duration from \"0s\" (refuse at once) to \"10s\", such as \"1s\".", rl.MaxDelayStr)))
			} else {
				rl.MaxDelay = &d
			}
		}
	}
	if t := a.TLS; t != nil {
		t.CertFile, t.KeyFile = c.Path(t.CertFile), c.Path(t.KeyFile)
		if !o.SkipFileChecks {
			diags = append(diags, checkKeyPair(t.CertFile, t.CertFileRange, t.KeyFile, t.KeyFileRange)...)
		}
	}
	return diags
}

// validateStoreTLS checks the store's endpoints and tls block together:
// what the block means depends on whether the store is a cluster or an
// embedded member exposed through client_url (see TLS).
func (c *Config) validateStoreTLS(o Options) hcl.Diagnostics {
	var diags hcl.Diagnostics
	s := &c.Store
	t := s.TLS
	if t != nil {
		t.CAFile, t.CertFile, t.KeyFile = c.Path(t.CAFile), c.Path(t.CertFile), c.Path(t.KeyFile)
	}
	switch {
	case s.Embedded != nil && len(s.Endpoints) > 0:
		return nil // reported as conflicting settings
	case s.Embedded != nil:
		e := s.Embedded
		if !set(e.ClientURLRange) {
			if t != nil {
				diags = append(diags, errAt(t.DefRange, "Unused tls block", "An embedded member without client_url is reached only in-process and through its unix socket; tls is for endpoints, or for an embedded client_url = \"https://host:port\"."))
			}
			return diags
		}
		u, err := url.Parse(e.ClientURL)
		switch {
		case err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" && u.Path != "/":
			return append(diags, errAt(e.ClientURLRange, "Invalid client_url", fmt.Sprintf("client_url %q must be https://host:port: a plain http port would let anyone who can reach it write the store, and local tools use the unix socket in data_dir.", e.ClientURL)))
		case t == nil:
			return append(diags, errAt(e.ClientURLRange, "client_url needs TLS", "Exposing the embedded member requires client certificates: add tls { ca_file = ..., cert_file = ..., key_file = ... } to the store block (ca_file signs the client certificates accepted; cert_file and key_file are the member's)."))
		}
		for _, f := range []struct{ name, v string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
			if f.v == "" {
				diags = append(diags, errAt(t.DefRange, "Missing "+f.name, fmt.Sprintf("An embedded member exposed at %s needs ca_file (the CA of the client certificates it accepts), cert_file and key_file (its own certificate).", e.ClientURL)))
			}
		}
	case len(s.Endpoints) > 0:
		for _, ep := range s.Endpoints {
			u, err := url.Parse(ep)
			switch {
			case err != nil || u.Scheme == "" || (u.Host == "" && u.Path == ""):
				diags = append(diags, errAt(s.EndpointsRange, "Invalid endpoint", fmt.Sprintf("%q is not a URL such as https://10.0.0.1:2379.", ep)))
			case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix" && u.Scheme != "unixs":
				diags = append(diags, errAt(s.EndpointsRange, "Invalid endpoint", fmt.Sprintf("%q: the scheme must be https, http, unix or unixs.", ep)))
			case t != nil && u.Scheme != "https" && u.Scheme != "unixs":
				diags = append(diags, errAt(s.EndpointsRange, "Endpoint without TLS", fmt.Sprintf("%q is not https, so the tls block would not be used for it: etcd's client connects to it in the clear.", ep)))
			}
		}
		if t != nil && (t.CertFile == "") != (t.KeyFile == "") {
			diags = append(diags, errAt(t.DefRange, "Incomplete client certificate", "Set both cert_file and key_file (Lucid's client certificate), or neither."))
		}
	}
	if t == nil || o.SkipFileChecks || diags.HasErrors() {
		return diags
	}
	if t.CAFile != "" {
		diags = append(diags, checkCA(t.CAFile, t.CAFileRange)...)
	}
	if t.CertFile != "" && t.KeyFile != "" {
		diags = append(diags, checkKeyPair(t.CertFile, t.CertFileRange, t.KeyFile, t.KeyFileRange)...)
	}
	return diags
}

// checkCA reports a CA file that is missing or holds no certificate.
func checkCA(path string, rng hcl.Range) hcl.Diagnostics {
	b, err := os.ReadFile(path)
	if err != nil {
		return hcl.Diagnostics{errAt(rng, "Cannot read CA file", err.Error()+".")}
	}
	certs, msg := pemCerts(b)
	if len(certs) == 0 {
		return hcl.Diagnostics{errAt(rng, "Invalid CA file", fmt.Sprintf("%s %s.", path, msg))}
	}
	return nil
}

// checkKeyPair reports a certificate or key file that is missing or does
// not parse (at its own line), a key that does not belong to the
// certificate (at the key's line), and a certificate that is not valid
// now (at the certificate's line).
func checkKeyPair(certFile string, certRange hcl.Range, keyFile string, keyRange hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		diags = append(diags, errAt(certRange, "Cannot read certificate", err.Error()+"."))
	} else if certs, msg := pemCerts(certPEM); len(certs) == 0 {
		diags = append(diags, errAt(certRange, "Invalid certificate", fmt.Sprintf("%s %s.", certFile, msg)))
	} else if now := time.Now(); now.After(certs[0].NotAfter) || now.Before(certs[0].NotBefore) {
		diags = append(diags, errAt(certRange, "Certificate not valid now", fmt.Sprintf("%s is valid from %s to %s.", certFile,
			certs[0].NotBefore.UTC().Format(time.RFC3339), certs[0].NotAfter.UTC().Format(time.RFC3339))))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return append(diags, errAt(keyRange, "Cannot read key", err.Error()+"."))
	}
	if diags.HasErrors() {
		return diags
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		diags = append(diags, errAt(keyRange, "Invalid key", fmt.Sprintf("%s with certificate %s: %v.", keyFile, certFile, err)))
	}
	return diags
}

// pemCerts parses the certificates in a PEM file; with none, it says why.
func pemCerts(b []byte) ([]*x509.Certificate, string) {
	var certs []*x509.Certificate
	why := "holds no PEM certificate"
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return certs, why
		}
		if block.Type != "CERTIFICATE" {
			why = fmt.Sprintf("holds a %q block, not a certificate", block.Type)
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			why = "holds a certificate that does not parse: " + err.Error()
			continue
		}
		certs = append(certs, cert)
	}
}

// CheckListen binds the API's listen address and releases it at once, so
// that an address this machine does not have, or one another process (a
// running lucid serve?) holds, is reported at its line before
// deployment. lucid config validate calls it; Parse does not, as a check
// of a config is no reason to touch the network.
func (c *Config) CheckListen() error {
	ln, err := net.Listen("tcp", c.API.Listen)
	if err != nil {
		why := err.Error()
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			why = fmt.Sprintf("%s is in use: another process (a running lucid serve?) listens on it.", c.API.Listen)
		case errors.Is(err, syscall.EADDRNOTAVAIL):
			why = fmt.Sprintf("%s: no network interface of this machine has that address.", c.API.Listen)
		case errors.Is(err, syscall.EACCES):
			why = fmt.Sprintf("%s: not allowed (ports below 1024 need privileges).", c.API.Listen)
		}
		return c.Errorf(c.API.ListenRange, "Cannot listen", "%s", why)
	}
	return ln.Close()
}
