package compat_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// exchange is one request through the recorder and its answer: what
// validate.py reads, one JSON object a line.
type exchange struct {
	Method      string              `json:"method"`
	Path        string              `json:"path"`
	Query       string              `json:"query"`
	RequestBody string              `json:"request_body"`
	Status      int                 `json:"status"`
	Headers     map[string][]string `json:"headers"`
	Body        string              `json:"body"`
}

// recorder is a proxy in front of a node's API that keeps every exchange.
// It forwards the client's Host header, so the links in Lucid's answers
// point back at the recorder and a client that follows them (a next page)
// is recorded too.
type recorder struct {
	URL    string
	target string
	mu     sync.Mutex
	log    []exchange
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	rec := &recorder{target: target}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqBody, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, rec.target+r.URL.RequestURI(), bytes.NewReader(reqBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
	rec.mu.Lock()
	rec.log = append(rec.log, exchange{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, RequestBody: string(reqBody),
		Status: resp.StatusCode, Headers: resp.Header, Body: string(body)})
	rec.mu.Unlock()
}

// mark is a position in the log, to read what one command caused.
func (rec *recorder) mark() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.log)
}

// since returns the exchanges after mark m.
func (rec *recorder) since(m int) []exchange {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]exchange(nil), rec.log[m:]...)
}

// write saves the log as JSON lines for validate.py.
func (rec *recorder) write(t *testing.T, path string) int {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, e := range rec.log {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	return len(rec.log)
}

// statuses is what GETs of server id answered after the request that
// changed it (its create, action or delete), in order, repeats collapsed:
// a status, or "404" once it is gone. It is the status sequence a client
// waiting for the change saw.
func statuses(log []exchange, id string) []string {
	var seen []string
	changed := false
	for _, e := range log {
		if e.Method != "GET" && (strings.Contains(e.Path, id) || strings.Contains(e.Body, id)) {
			changed, seen = true, nil
			continue
		}
		if !changed || e.Method != "GET" || !strings.HasSuffix(e.Path, "/servers/"+id) {
			continue
		}
		st := "404"
		if e.Status == http.StatusOK {
			var b struct {
				Server struct {
					Status string `json:"status"`
				} `json:"server"`
			}
			if json.Unmarshal([]byte(e.Body), &b) != nil {
				continue
			}
			st = b.Server.Status
		} else if e.Status != http.StatusNotFound {
			continue
		}
		if len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
		}
	}
	return seen
}
