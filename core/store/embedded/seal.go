package embedded

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// How the member is sealed (see RATIONALE.md beside this file): its
// clients reach it through a unix socket in the private data directory,
// or, when the operator exposes it to other nodes, over TLS with client
// certificates; its peer port, which a single member never dials, only
// accepts a certificate generated at each start and kept in the data
// directory.

// SocketName is the member's client socket, in its data directory.
const SocketName = "etcd.sock"

// maxSocketPath is the longest path a unix socket may have on Linux
// (sun_path holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// TLSFiles are PEM files for serving clients over TLS: the member's
// certificate and key, and the CA whose certificates it accepts from
// clients.
type TLSFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// privateDir creates dir with mode 0700, or narrows an existing one to
// 0700: the client socket inside it is protected by the directory alone
// (etcd creates it with the umask's mode), so no other user may enter it.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("embedded etcd: data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("embedded etcd: data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("embedded etcd: data directory %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("embedded etcd: data directory %s is mode %v and cannot be made private: %w", dir, fi.Mode().Perm(), err)
		}
	}
	return nil
}

// socketURL is the unix:// URL of the client socket in dir (absolute),
// refused when the path is too long for a unix socket.
func socketURL(dir string) (url.URL, error) {
	p := filepath.Join(dir, SocketName)
	if len(p) > maxSocketPath {
		return url.URL{}, fmt.Errorf("embedded etcd: the client socket %s is %d bytes long, and a unix socket path may have at most %d: choose a shorter data_dir", p, len(p), maxSocketPath)
	}
	// Host+Path is what etcd listens on; String() gives unix:///abs/path,
	// which clientv3 dials.
	return url.URL{Scheme: "unix", Path: p}, nil
}

// exposedURL checks a client URL the operator asked for: https only, and
// then TLS with client certificates is required.
func exposedURL(raw string, files *TLSFiles) (url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return url.URL{}, fmt.Errorf("embedded etcd: client url %q: %w", raw, err)
	}
	if u.Scheme != "https" {
		return url.URL{}, fmt.Errorf("embedded etcd: client url %q: only https is accepted (with client certificates): a plain client port lets anyone who can reach it write the store; local tools use the unix socket in the data directory", raw)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil || u.Path != "" && u.Path != "/" {
		return url.URL{}, fmt.Errorf("embedded etcd: client url %q is not https://host:port", raw)
	}
	if files == nil || files.CAFile == "" || files.CertFile == "" || files.KeyFile == "" {
		return url.URL{}, fmt.Errorf("embedded etcd: client url %q needs TLS files (ca_file to check client certificates, cert_file and key_file to serve)", raw)
	}
	return url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// peerTLS writes a fresh self-signed certificate and key into
// dir/peer-tls (0700, files 0600) and returns the TLS setup that serves
// the peer port with it and accepts only it as a client certificate. A
// single member never dials its peers, so nobody else needs it: the peer
// port, which would otherwise take raft messages from anyone on the
// machine, is closed to everyone.
func peerTLS(dir string) (transport.TLSInfo, error) {
	pdir := filepath.Join(dir, "peer-tls")
	if err := privateDir(pdir); err != nil {
		return transport.TLSInfo{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return transport.TLSInfo{}, fmt.Errorf("embedded etcd: peer key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return transport.TLSInfo{}, fmt.Errorf("embedded etcd: peer certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "lucid embedded etcd peer"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return transport.TLSInfo{}, fmt.Errorf("embedded etcd: peer certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return transport.TLSInfo{}, fmt.Errorf("embedded etcd: peer key: %w", err)
	}
	info := transport.TLSInfo{
		CertFile:       filepath.Join(pdir, "peer.crt"),
		KeyFile:        filepath.Join(pdir, "peer.key"),
		TrustedCAFile:  filepath.Join(pdir, "peer.crt"),
		ClientCertAuth: true,
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{info.KeyFile, "PRIVATE KEY", kder}, {info.CertFile, "CERTIFICATE", der}} {
		if err := writePrivate(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})); err != nil {
			return transport.TLSInfo{}, err
		}
	}
	return info, nil
}

// writePrivate replaces path with data, mode 0600, through a temporary
// file and a rename, so a reader never sees half a file.
func writePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("embedded etcd: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("embedded etcd: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	return nil
}
