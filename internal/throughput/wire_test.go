package throughput

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestWireSpeaksWhatNetHTTPServes drives the minimal client against Go's
// own HTTP server, the one lucid serve runs: bodies with Content-Length
// and chunked ones (a handler that flushes, or writes more than the
// server buffers), headers and bodies as sent, one connection kept alive
// across calls, and a new one after the server closes it.
func TestWireSpeaksWhatNetHTTPServes(t *testing.T) {
	var conns atomic.Int64
	big := strings.Repeat("x", 10000)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, "%s %s %s %s", r.Method, r.Header.Get("Prefer"), r.Header.Get("Content-Type"), body)
		case "/flushed":
			io.WriteString(w, "first,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "second")
		case "/big":
			io.WriteString(w, big)
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	w, err := newWire(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		method, path, body string
		header             http.Header
		wantCode           int
		want               string
		wantConns          int64
	}{
		{"POST", "/echo", `{"os-stop":null}`, http.Header{"Prefer": {"wait=30"}}, 202, `POST wait=30 application/json {"os-stop":null}`, 1},
		{"GET", "/echo", "", nil, 202, "GET   ", 1},
		{"GET", "/flushed", "", nil, 200, "first,second", 1},
		{"GET", "/big", "", nil, 200, big, 1},
		{"GET", "/empty", "", nil, 204, "", 1},
		{"GET", "/close", "", nil, 200, "bye", 1},
		{"GET", "/echo", "", nil, 202, "GET   ", 2}, // a new connection after the close
	} {
		code, b, err := w.Send(ctx, tc.method, tc.path, tc.body, tc.header)
		if err != nil || code != tc.wantCode || string(b) != tc.want {
			t.Fatalf("%s %s = %d %.60q, %v; want %d %.60q", tc.method, tc.path, code, b, err, tc.wantCode, tc.want)
		}
		if n := conns.Load(); n != tc.wantConns {
			t.Fatalf("after %s %s the server saw %d connections, want %d", tc.method, tc.path, n, tc.wantConns)
		}
	}
	// The server drops idle connections; the next call dials again.
	srv.CloseClientConnections()
	if code, b, err := w.Send(ctx, "GET", "/echo", "", nil); err != nil || code != 202 || string(b) != "GET   " {
		t.Fatalf("after the server closed the connection: %d %q, %v", code, b, err)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("the server saw %d connections, want 3", n)
	}
	if _, err := newWire("https://example.invalid"); err == nil {
		t.Fatal("newWire accepted https, which it does not speak")
	}
}
