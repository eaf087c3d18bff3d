package embedded_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lucid-project/lucid/core/store/embedded"
	"github.com/lucid-project/lucid/internal/testenv"
)

// BenchmarkClientPaths compares the ways to reach one member, in the same
// run: in-process (what Lucid uses), the unix socket (the default for
// other local tools) and https with client certificates (a second node).
func BenchmarkClientPaths(b *testing.B) {
	pki := testenv.NewPKI(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := embedded.Start(ctx, embedded.Config{DataDir: filepath.Join(b.TempDir(), "etcd"), FastElection: true,
		ClientURL: "https://127.0.0.1:0", TLS: &embedded.TLSFiles{CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	dial := func(ep string, tc *tls.Config) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cli.Close() })
		return cli
	}
	urls := m.ClientURLs()
	for _, path := range []struct {
		name string
		cli  *clientv3.Client
	}{
		{"in-process", m.Client()},
		{"unix", dial(urls[0], nil)},
		{"mtls", dial(urls[1], pki.ClientTLS(b, true))},
	} {
		if _, err := path.cli.Put(ctx, "/bench", "v"); err != nil {
			b.Fatal(err)
		}
		b.Run(path.name+"/get", func(b *testing.B) {
			for b.Loop() {
				if _, err := path.cli.Get(ctx, "/bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(path.name+"/put", func(b *testing.B) {
			for b.Loop() {
				if _, err := path.cli.Put(ctx, "/bench", "v"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
