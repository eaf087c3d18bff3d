package throughput

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lucid-project/lucid/internal/soak"
)

// sender makes one HTTP call and returns the answer's status and body.
// soak.API (Go's net/http client) is one; wire is the other.
type sender interface {
	Send(ctx context.Context, method, path, body string, header http.Header) (int, []byte, error)
}

// callError is the error for an answer with an unexpected status: what
// was asked, the status and the answer's body.
func callError(method, path string, status int, body []byte) error {
	return &soak.CallError{Method: method, Path: path, Status: status, Body: string(bytes.TrimSpace(body))}
}

// Client values choose the path clients' HTTP client (Config.Client).
const (
	// ClientWire is a minimal HTTP/1.1 client: one keep-alive connection
	// per bench client, the request written in one write, the answer
	// read with a bufio.Reader. Load tools such as wrk work this way, so
	// that the load generator, on the same two cores as the server,
	// leaves the server the machine: Go's client spent 57-84 µs of CPU
	// per status change in the bench process (two goroutines and
	// channel hand-offs per connection, header maps, a body reader per
	// call), a seventh of the three processes' CPU.
	ClientWire = "wire"
	// ClientGo is Go's net/http client (soak.API), as before.
	ClientGo = "go"
)

// wire is one HTTP/1.1 keep-alive connection to the server. It is not
// safe for concurrent use: each path client has its own. It speaks only
// what the server answers: Content-Length or chunked bodies, no 1xx, no
// trailers. A broken connection is dialled again on the next call.
type wire struct {
	addr string // host:port
	host string // the Host header
	conn net.Conn
	r    *bufio.Reader
	req  bytes.Buffer // the request being written
	body bytes.Buffer // the answer's body
}

func newWire(base string) (*wire, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("throughput: wire client: %s: only http is spoken", base)
	}
	return &wire{addr: u.Host, host: u.Host}, nil
}

// Send makes one call. The returned body is the wire's own buffer, valid
// until the next call.
func (w *wire) Send(ctx context.Context, method, path, body string, header http.Header) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		fresh := w.conn == nil
		if fresh {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", w.addr)
			if err != nil {
				return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
			}
			w.conn, w.r = c, bufio.NewReaderSize(c, 16<<10)
		}
		code, b, err := w.roundTrip(ctx, method, path, body, header)
		if err == nil {
			return code, b, nil
		}
		w.conn.Close()
		w.conn = nil
		// A kept-alive connection the server closed meanwhile fails
		// before any answer: try once more on a new one, as net/http
		// does. (The actions sent here are guarded in etcd, so a
		// repeated one would be refused, not doubled.)
		if fresh || attempt > 0 || !errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
}

func (w *wire) roundTrip(ctx context.Context, method, path, body string, header http.Header) (int, []byte, error) {
	deadline := time.Now().Add(time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := w.conn.SetDeadline(deadline); err != nil {
		return 0, nil, err
	}
	q := &w.req
	q.Reset()
	q.WriteString(method)
	q.WriteByte(' ')
	q.WriteString(path)
	q.WriteString(" HTTP/1.1\r\nHost: ")
	q.WriteString(w.host)
	q.WriteString("\r\n")
	for k, vs := range header {
		for _, v := range vs {
			q.WriteString(k)
			q.WriteString(": ")
			q.WriteString(v)
			q.WriteString("\r\n")
		}
	}
	if body != "" || method == http.MethodPost || method == http.MethodPut {
		q.WriteString("Content-Type: application/json\r\nContent-Length: ")
		q.WriteString(strconv.Itoa(len(body)))
		q.WriteString("\r\n")
	}
	q.WriteString("\r\n")
	q.WriteString(body)
	if _, err := w.conn.Write(q.Bytes()); err != nil {
		return 0, nil, err
	}
	return w.readAnswer()
}

// readAnswer reads one answer: status line, headers, body.
func (w *wire) readAnswer() (int, []byte, error) {
	line, err := w.line()
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK"
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") || len(rest) < 3 {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	code, err := strconv.Atoi(rest[:3])
	if err != nil {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	length, chunked, closing := -1, false, false
	for {
		h, err := w.line()
		if err != nil {
			return 0, nil, err
		}
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		v = strings.TrimSpace(v)
		switch {
		case strings.EqualFold(k, "Content-Length"):
			if length, err = strconv.Atoi(v); err != nil || length < 0 {
				return 0, nil, fmt.Errorf("malformed Content-Length %q", v)
			}
		case strings.EqualFold(k, "Transfer-Encoding"):
			chunked = strings.EqualFold(v, "chunked")
		case strings.EqualFold(k, "Connection"):
			closing = strings.EqualFold(v, "close")
		}
	}
	w.body.Reset()
	switch {
	case code == http.StatusNoContent || code == http.StatusNotModified:
		// no body, whatever the headers say
	case chunked:
		err = w.chunks()
	case length >= 0:
		_, err = io.CopyN(&w.body, w.r, int64(length))
	default:
		return 0, nil, errors.New("an answer with neither Content-Length nor chunked encoding")
	}
	if err != nil {
		return 0, nil, err
	}
	if closing {
		w.conn.Close()
		w.conn = nil
	}
	return code, w.body.Bytes(), nil
}

// chunks reads a chunked body into w.body.
func (w *wire) chunks() error {
	for {
		line, err := w.line()
		if err != nil {
			return err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, then the blank line
				if l, err := w.line(); err != nil || l == "" {
					return err
				}
			}
		}
		if _, err := io.CopyN(&w.body, w.r, n); err != nil {
			return err
		}
		if l, err := w.line(); err != nil || l != "" {
			if err == nil {
				err = fmt.Errorf("chunk not followed by CRLF")
			}
			return err
		}
	}
}

// line reads one CRLF-terminated line, without the CRLF.
func (w *wire) line() (string, error) {
	b, err := w.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", errors.New("header line longer than 16 KiB")
		}
		return "", err
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

// Close closes the connection.
func (w *wire) Close() error {
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// senders returns n senders for the path clients: one wire each, or
// the shared Go client.
func senders(kind, base string, a *soak.API, n int) ([]sender, func(), error) {
	out := make([]sender, n)
	if kind == ClientGo {
		for i := range out {
			out[i] = a
		}
		return out, func() {}, nil
	}
	ws := make([]*wire, n)
	for i := range out {
		w, err := newWire(base)
		if err != nil {
			return nil, nil, err
		}
		ws[i], out[i] = w, w
	}
	return out, func() {
		for _, w := range ws {
			w.Close()
		}
	}, nil
}
