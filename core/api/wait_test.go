package api_test

import (
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// longPoll is GET /v1/instances/{id} with query, through the admin's
// token (the node has authentication on); it returns the code and, for
// a 200, the instance's status and whether a transition is set.
func longPoll(t *testing.T, n *testnode.Node, id, query string) (code int, status string, inFlight bool, r testnode.Response) {
	t.Helper()
	r = n.Call(t, "GET", "/v1/instances/"+id+"?"+query, "")
	if r.Code != http.StatusOK {
		return r.Code, "", false, r
	}
	in := r.Body["instance"].(map[string]any)
	return r.Code, in["status"].(string), in["transition"] != nil, r
}

func TestWaitParametersRefused(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	id, _ := n.Create(t, "w")
	for _, tt := range []struct {
		query, message string
	}{
		{"wait=ready", `wait: "ready" is not a condition to wait for; the one there is is wait=settled`},
		{"wait=", `wait: "" is not a condition to wait for; the one there is is wait=settled`},
		{"wait=settled&wait=settled", `wait: "settled,settled" is not a condition to wait for; the one there is is wait=settled`},
		{"timeout=5s", `timeout: only a long-poll (wait=settled) takes a timeout`},
		{"wait=settled&timeout=5", `timeout: "5" is not a duration above zero, such as 30s`},
		{"wait=settled&timeout=soon", `timeout: "soon" is not a duration above zero, such as 30s`},
		{"wait=settled&timeout=0s", `timeout: "0s" is not a duration above zero, such as 30s`},
		{"wait=settled&timeout=-1s", `timeout: "-1s" is not a duration above zero, such as 30s`},
		{"wait=settled&timeout=1s&timeout=2s", `timeout: given 2 times`},
	} {
		t.Run(tt.query, func(t *testing.T) {
			r := n.Call(t, "GET", "/v1/instances/"+id+"?"+tt.query, "")
			want := map[string]any{"badRequest": map[string]any{"code": float64(400), "message": "invalid request: " + tt.message}}
			if r.Code != http.StatusBadRequest || !reflect.DeepEqual(r.Body, want) {
				t.Fatalf("got %d %s, want 400 %v", r.Code, r.Raw, want)
			}
		})
	}
}

// TestWaitReturnsWhenSettled long-polls an action in flight: the answer
// is the settled instance, never the transition, and a plain GET and a
// long-poll of a settled instance answer alike.
func TestWaitReturnsWhenSettled(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `boot_delay = "300ms"`})
	id, _ := n.Create(t, "w")
	if code, status, inFlight, r := longPoll(t, n, id, "wait=settled&timeout=30s"); code != 200 || status != "ACTIVE" || inFlight {
		t.Fatalf("long-poll of a create: %d %s in flight %v: %s", code, status, inFlight, r.Raw)
	}
	if r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", `{"os-stop": null}`); r.Code != http.StatusAccepted {
		t.Fatalf("stop: %d %s", r.Code, r.Raw)
	}
	code, status, inFlight, polled := longPoll(t, n, id, "wait=settled")
	if code != 200 || status != "SHUTOFF" || inFlight {
		t.Fatalf("long-poll of a stop: %d %s in flight %v: %s", code, status, inFlight, polled.Raw)
	}
	if plain := n.Call(t, "GET", "/v1/instances/"+id, ""); plain.Raw != polled.Raw {
		t.Fatalf("a settled instance: plain GET %s, long-poll %s", plain.Raw, polled.Raw)
	}
	if r := n.CallHeader(t, "GET", "/v1/instances/"+id+"?wait=settled", "", map[string]string{"X-Auth-Token": ""}); r.Code != http.StatusUnauthorized {
		t.Fatalf("long-poll without a token: %d %s, want 401", r.Code, r.Raw)
	}
}

// TestWaitTimesOut: at its timeout a long-poll answers the current view,
// transition still set, for the client to ask again.
func TestWaitTimesOut(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `boot_delay = "1h"`})
	id, _ := n.Create(t, "slow")
	code, status, inFlight, r := longPoll(t, n, id, "wait=settled&timeout=200ms")
	if code != 200 || status != "BUILD" || !inFlight {
		t.Fatalf("long-poll at its timeout: %d %s in flight %v: %s, want 200 BUILD with the transition", code, status, inFlight, r.Raw)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return n.Feed.Waiting() == 0 }, "the timed-out waiter was not removed")
}

// TestWaitDeleted: a long-poll of an instance deleted while it waits is
// 404, as is one of an instance already gone.
func TestWaitDeleted(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `boot_delay = "1h"`})
	id, _ := n.Create(t, "doomed")
	done := make(chan testnode.Response, 1)
	go func() { done <- n.Call(t, "GET", "/v1/instances/"+id+"?wait=settled&timeout=60s", "") }()
	testenv.Eventually(t, 10*time.Second, func() bool { return n.Feed.Waiting() == 1 }, "the long-poll never waited")
	if r := n.Call(t, "DELETE", "/v2.1/servers/"+id, ""); r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Raw)
	}
	select {
	case r := <-done:
		if r.Code != http.StatusNotFound {
			t.Fatalf("long-poll across a delete: %d %s, want 404", r.Code, r.Raw)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long-poll did not end with the delete")
	}
	if code, _, _, r := longPoll(t, n, id, "wait=settled"); code != http.StatusNotFound {
		t.Fatalf("long-poll of a deleted instance: %d %s, want 404", code, r.Raw)
	}
}

// TestManyWaiters: every long-poll of one instance is released by the
// one write that settles it, and none is left behind.
func TestManyWaiters(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `boot_delay = "1s"`})
	id, _ := n.Create(t, "popular")
	const waiters = 40
	type answer struct {
		code     int
		status   string
		inFlight bool
	}
	answers := make(chan answer, waiters)
	var wg sync.WaitGroup
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, status, inFlight, _ := longPoll(t, n, id, "wait=settled&timeout=60s")
			answers <- answer{code, status, inFlight}
		}()
	}
	wg.Wait()
	close(answers)
	got := map[answer]int{}
	for a := range answers {
		got[a]++
	}
	if want := (answer{200, "ACTIVE", false}); len(got) != 1 || got[want] != waiters {
		t.Fatalf("answers %v, want all %d %v", got, waiters, want)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return n.Feed.Waiting() == 0 }, "waiters left: %d", n.Feed.Waiting())
}
