package api

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	"github.com/lucid-project/lucid/core/store"
)

// A detailed list spliced from cached bodies is byte for byte what
// encoding/json writes for the same page (the answer before the cache),
// for every microversion class and base URL, whether the bodies were
// cached or not, and after records change.
func TestServerDetailsAreEncodingJSONBytes(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	web := rec("a1", "web <&> \u2028 \xff", 1, instance.Active, "m1.tiny", "cirros", "n1")
	web.State.Metadata = map[string]string{"z": "last", "a": "<script>", "é": "\u2029"}
	web.State.Project, web.State.User, web.State.PowerState = "p1", "u1", instance.Running
	web.StateRev = 10
	failed := rec("b2", "failed", 2, instance.Error, "m1.small", "debian-12", "n2")
	failed.State.Fault = &instance.Fault{Code: 500, Message: "disk \"gone\" & <lost>", At: at}
	failed.StateRev = 11
	moving := rec("c3", "moving", 3, instance.Active, "m1.small", "cirros", "")
	moving.State.OldFlavor = &instance.Flavor{ID: "m1.tiny"}
	moving.Transition = &instance.Transition{Action: instance.ActionResize, Steps: []instance.Status{instance.StatusQueueResize, instance.StatusPrepResize, instance.StatusResize}, Step: 1}
	moving.StateRev, moving.TransitionRev = 12, 13
	broken := store.Record{State: instance.State{ID: "d4"}, StateRev: 14, Err: fmt.Errorf("%w: garbage", store.ErrUnreadable)}
	page := []store.Record{web, failed, moving, broken}

	request := func(host string, https bool, v microversion) *http.Request {
		r := httptest.NewRequest("GET", "http://"+host+"/v2.1/servers/detail?limit=4&name=x", nil)
		if https {
			r.TLS = &tls.ConnectionState{}
		}
		return r.WithContext(context.WithValue(r.Context(), versionKey{}, v))
	}
	want := func(r *http.Request, page []store.Record, next []link) string {
		out := make([]any, 0, len(page))
		for _, rec := range page {
			out = append(out, serverDetail(r, rec))
		}
		body := map[string]any{"servers": out}
		if next != nil {
			body["servers_links"] = next
		}
		w := httptest.NewRecorder()
		writeJSON(w, http.StatusOK, body)
		return w.Body.String()
	}
	s := &Server{}
	got := func(r *http.Request, page []store.Record, next []link) string {
		w := httptest.NewRecorder()
		s.writeServerDetails(w, r, page, next)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("answer %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
		}
		return w.Body.String()
	}
	cases := []struct {
		name  string
		r     *http.Request
		page  []store.Record
		links bool
	}{
		{"2.1", request("h1:8774", false, microversion{2, 1}), page, false},
		{"2.1 again, cached", request("h1:8774", false, microversion{2, 1}), page, true},
		{"2.9", request("h1:8774", false, microversion{2, 9}), page, false},
		{"2.19", request("h1:8774", false, microversion{2, 19}), page, true},
		{"2.21 cached", request("h1:8774", false, microversion{2, 21}), page, false},
		{"another host", request("proxy:1", false, microversion{2, 21}), page, false},
		{"https", request("proxy:1", true, microversion{2, 21}), page, true},
		{"empty page", request("h1:8774", false, microversion{2, 1}), nil, false},
		{"one server", request("h1:8774", false, microversion{2, 1}), page[1:2], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var next []link
			if c.links && len(c.page) > 0 {
				next = nextLink(c.r, c.page[len(c.page)-1].State.ID)
			}
			if g, w := got(c.r, c.page, next), want(c.r, c.page, next); g != w {
				t.Fatalf("spliced list differs from encoding/json's:\n got %s\nwant %s", g, w)
			}
		})
	}
	// A new revision is encoded anew, never served from the old bytes.
	r := request("h1:8774", false, microversion{2, 1})
	before := got(r, page, nil)
	changed := append([]store.Record(nil), page...)
	changed[0].State.Name, changed[0].StateRev = "renamed", 20
	changed[2].Transition = nil
	changed[2].TransitionRev = 0
	if g, w := got(r, changed, nil), want(r, changed, nil); g != w || g == before {
		t.Fatalf("after records changed:\n got %s\nwant %s", g, w)
	}
}

// Bodies of servers that are gone are dropped once the cache outgrows
// the instances listed.
func TestServerBodiesArePruned(t *testing.T) {
	var c serverBodies
	r := httptest.NewRequest("GET", "http://h/v2.1/servers/detail", nil)
	var all []store.Record
	for i := range 1100 {
		rec := rec(fmt.Sprintf("i%d", i), "x", i, instance.Active, "m1.tiny", "cirros", "n")
		rec.StateRev = int64(i + 1)
		if _, err := c.appendDetail(nil, r, bodyVariant(r), &rec); err != nil {
			t.Fatal(err)
		}
		all = append(all, rec)
	}
	c.prune(all)
	if len(c.m) != 1100 {
		t.Fatalf("pruned live servers: %d bodies left of 1100", len(c.m))
	}
	c.prune(all[:50])
	if len(c.m) != 50 {
		t.Fatalf("%d bodies left after 1,050 servers went, want 50", len(c.m))
	}
	if _, ok := c.m["i49"]; !ok {
		t.Fatal("a live server's body was dropped")
	}
}
