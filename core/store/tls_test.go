package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/core/store/embedded"
	"github.com/lucid-project/lucid/internal/testenv"
)

// A cluster that demands client certificates: Open works with the
// configured files and fails without a certificate or with the wrong CA.
func TestOpenTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := embedded.Start(ctx, embedded.Config{DataDir: filepath.Join(t.TempDir(), "etcd"), FastElection: true,
		ClientURL: "https://127.0.0.1:0", TLS: &embedded.TLSFiles{CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	endpoint := m.ClientURLs()[1]
	other := testenv.NewPKI(t)

	for _, tc := range []struct {
		name          string
		ca, cert, key string
		ok            bool
	}{
		{"client certificate", pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile, true},
		{"no client certificate", pki.CAFile, "", "", false},
		{"server not trusted", other.CAFile, pki.ClientCertFile, pki.ClientKeyFile, false},
		{"certificate of another CA", pki.CAFile, other.ClientCertFile, other.ClientKeyFile, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc2, err := store.ClientTLS(tc.ca, tc.cert, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(ctx, store.Config{Endpoints: []string{endpoint}, TLS: tc2, Prefix: "/lucid", DialTimeout: 2 * time.Second})
			if !tc.ok {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			create(t, s, "over-tls")
			if rec, err := s.Get(ctx, "over-tls"); err != nil || rec.State.ID != "over-tls" {
				t.Fatalf("Get over TLS: %+v %v", rec, err)
			}
		})
	}
}

func TestClientTLSErrors(t *testing.T) {
	pki := testenv.NewPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name          string
		ca, cert, key string
		want          []string
	}{
		{"missing CA", missing, "", "", []string{missing, "no such file"}},
		{"CA not PEM", pki.KeyFile, "", "", []string{pki.KeyFile, "no PEM certificate"}},
		{"cert without key", "", pki.CertFile, "", []string{"both cert_file and key_file"}},
		{"key of another cert", "", pki.CertFile, pki.ClientKeyFile, []string{pki.CertFile, pki.ClientKeyFile, "private key does not match"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.ClientTLS(tc.ca, tc.cert, tc.key)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
