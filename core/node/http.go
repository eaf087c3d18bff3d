package node

import (
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lucid-project/lucid/core/config"
)

// The API server's limits when the config's api block leaves them unset.
// A client that is slow or silent holds a connection (and its memory) at
// most this long; see RATIONALE.md beside this file.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included:
	// bodies are at most 1 MiB (core/api), which takes seconds even on a
	// slow link.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds handling a request and writing its
	// answer. The largest answers (a page of 1,000 detailed servers, a
	// few MB) take well under a second on loopback; a long-lived answer
	// (a watch, later) must extend its own deadline with
	// http.ResponseController.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout closes keep-alive connections that send nothing.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxConnections caps the connections open at once.
	DefaultMaxConnections = 1024
	// MaxHeaderBytes bounds a request's line and headers. OpenStack
	// clients send well under 4 KiB (a Keystone token is ~200 bytes).
	MaxHeaderBytes = 64 << 10
)

// newServer builds the API's http.Server from the api block, applying
// the defaults above to what it leaves unset.
func newServer(api config.API, handler http.Handler, logger *slog.Logger) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: or(api.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       or(api.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      or(api.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       or(api.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    MaxHeaderBytes,
		// Connection-level trouble (TLS handshakes from scanners, closed
		// connections) is noise at warn level; keep it at debug.
		ErrorLog: log.New(slogWriter{logger}, "", 0),
	}
}

// listen opens the API's listener: TCP on api.Listen, capped at
// api.MaxConnections open connections, and TLS on top when api.TLS is
// set. It returns the listener and the URL clients use.
func listen(api config.API) (net.Listener, string, error) {
	var tc *tls.Config
	if api.TLS != nil {
		cert, err := tls.LoadX509KeyPair(api.TLS.CertFile, api.TLS.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("api tls: %w", err)
		}
		// HTTP/1.1 only: one request at a time per connection, so the
		// connection cap and the timeouts bound what a client holds
		// (HTTP/2 would multiplex hundreds of streams on one); the
		// OpenStack clients speak HTTP/1.1.
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	ln, err := net.Listen("tcp", api.Listen)
	if err != nil {
		return nil, "", err
	}
	max := api.MaxConnections
	if max <= 0 {
		max = DefaultMaxConnections
	}
	ln = newLimitListener(ln, max)
	if tc == nil {
		return ln, "http://" + ln.Addr().String(), nil
	}
	return tls.NewListener(ln, tc), "https://" + ln.Addr().String(), nil
}

// limitListener caps the connections open at once, as
// golang.org/x/net/netutil.LimitListener does: when max are open, Accept
// waits for one to close, and new connections wait in the kernel's
// backlog meanwhile. The server's timeouts bound how long any connection
// can hold its slot, so a flood of idle or slow clients cannot exhaust
// memory or file descriptors; it can only make others wait.
type limitListener struct {
	net.Listener
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close: ends a wait in Accept
	once  sync.Once
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close stops accepting; connections already open keep their slots until
// they close.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// open is how many connections hold a slot now (those accepted and not
// closed, plus at most one Accept between its slot and its connection).
func (l *limitListener) open() int { return len(l.slots) }

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// slogWriter turns the http.Server's error log lines into debug records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("http server", "msg", string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
