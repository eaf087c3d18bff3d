package store

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ClientTLS builds the TLS setup for connecting to an etcd cluster from
// PEM files (the HCL store { tls { ca_file, cert_file, key_file } }):
// caFile holds the CA certificates the servers' certificates must chain
// to ("" trusts the system's roots); certFile and keyFile are the client
// certificate a cluster started with client-certificate auth demands
// (both or neither). Errors name the file at fault.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("store: tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store: tls: %s holds no PEM certificate", caFile)
		}
		c.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("store: tls: key pair %s, %s: %w", certFile, keyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, fmt.Errorf("store: tls: a client certificate needs both cert_file and key_file (got cert_file %q, key_file %q)", certFile, keyFile)
	}
	return c, nil
}
