package node_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testnode"
)

// closedWithin reads from c until the server closes it and fails the test
// if that takes longer than limit: a generous bound, as the timeouts under
// test are a second, yet below every default (10 s and more), so a
// configured timeout that is not applied fails. It returns what the
// server sent.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v (read so far: %q)", limit, b)
	}
	return string(b)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Slow, silent and idle clients lose their connection to the server's
// timeouts; a prompt client on a fresh connection is served throughout.
func TestServerTimeouts(t *testing.T) {
	n := testnode.Start(t, testnode.Options{API: `
  read_header_timeout = "1s"
  read_timeout        = "1s"
  idle_timeout        = "1s"`})
	const limit = 8 * time.Second

	t.Run("slow body", func(t *testing.T) {
		c := dial(t, n.Addr)
		// With a token, so that the handler itself is reading the body.
		io.WriteString(c, "POST /v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: "+n.Token+"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"server\":")
		got := closedWithin(t, c, limit)
		if got != "" && !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Fatalf("a slow body got %q, want the connection closed (with at most a 400)", got)
		}
	})
	t.Run("headers never end", func(t *testing.T) {
		c := dial(t, n.Addr)
		io.WriteString(c, "GET /v2.1/servers HTTP/1.1\r\nHost: x\r\n")
		if got := closedWithin(t, c, limit); got != "" && !strings.HasPrefix(got, "HTTP/1.1 408") {
			t.Fatalf("unfinished headers got %q", got)
		}
	})
	t.Run("silent", func(t *testing.T) {
		c := dial(t, n.Addr)
		if got := closedWithin(t, c, limit); got != "" {
			t.Fatalf("a silent connection got %q", got)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t, n.Addr)
		io.WriteString(c, "GET /v2.1/ HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("first request: %s, close=%v; want 200 on a kept-alive connection", resp.Status, resp.Close)
		}
		c.SetReadDeadline(time.Now().Add(limit))
		rest, err := io.ReadAll(br)
		if err != nil || len(rest) != 0 {
			t.Fatalf("an idle keep-alive connection: read %q, %v; want it closed", rest, err)
		}
	})
	// The server is still there for a well-behaved client.
	if r := n.Call(t, "GET", "/v2.1/flavors", ""); r.Code != 200 {
		t.Fatalf("after the timeouts: %d", r.Code)
	}
}

// With max_connections open, a new connection is not served until one of
// them closes; then it is.
func TestMaxConnections(t *testing.T) {
	// Without auth: the test node's logged-in client would keep a
	// connection (a slot) of its own.
	n := testnode.Start(t, testnode.Options{API: `
  max_connections     = 2
  read_header_timeout = "1m"`, Extra: "auth { enabled = false }"})
	a, b := dial(t, n.Addr), dial(t, n.Addr)
	// Both are accepted (each gets its answer), then they hold their slot.
	for _, c := range []net.Conn{a, b} {
		io.WriteString(c, "GET /v2.1/ HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("within the cap: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	c := dial(t, n.Addr)
	io.WriteString(c, "GET /v2.1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if k, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection over max_connections = 2 was answered (%d bytes, %v)", k, err)
	}
	a.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("once a slot was free: %v %v, want 200", resp, err)
	}
	resp.Body.Close()
}

// A driver's error text of 100,000 bytes becomes a fault and a history
// message of about a kilobyte: nothing that large reaches etcd.
func TestLongDriverErrorClipped(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `fail_spawn = "` + strings.Repeat("x", 100_000) + `"`})
	ctx := context.Background()
	id, r, err := n.Client.Create(ctx, client.CreateRequest{Name: "failing", FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := n.Client.Wait(ctx, id, r.RequestID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != "ERROR" || in.Fault == nil || len(in.Fault.Message) > 2048 || !strings.Contains(in.Fault.Message, "more bytes)") {
		t.Fatalf("status %s, fault of %d bytes; want ERROR with the driver's text cut to about 1 KiB", in.Status, len(in.Fault.Message))
	}
	h, err := n.Client.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range h {
		if len(rec.Message) > 2048 {
			t.Fatalf("history record %d holds %d bytes of message", rec.Seq, len(rec.Message))
		}
	}
}
