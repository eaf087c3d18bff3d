package api_test

import (
	"net/http"
	"testing"

	"github.com/lucid-project/lucid/internal/testnode"
)

// An action sent with Prefer: wait=N (RFC 7240) is answered when it has
// ended: 200 with the server as the action left it and Preference-Applied.
// One that does not end in time, or a preference this server does not
// understand, gets the ordinary 202, and the action goes on either way.
func TestPreferWait(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `resize_delay = "1h"`})
	created := n.CallHeader(t, "POST", "/v2.1/servers", `{"server": {"name": "p", "flavorRef": "m1.tiny", "imageRef": "cirros"}}`,
		map[string]string{"Prefer": "wait=30"})
	if created.Code != http.StatusOK || created.Header.Get("Preference-Applied") != "wait=30" || created.Header.Get("Location") == "" {
		t.Fatalf("create with Prefer: wait: %d %v %s", created.Code, created.Header, created.Raw)
	}
	srv := created.Body["server"].(map[string]any)
	id, _ := srv["id"].(string)
	if srv["status"] != "ACTIVE" || srv["adminPass"] == "" || srv["adminPass"] == nil || srv["OS-EXT-STS:task_state"] != nil {
		t.Fatalf("create with Prefer: wait answered %s, want the ACTIVE server with its adminPass", created.Raw)
	}
	for _, tt := range []struct {
		name, body, prefer string
		code               int
		applied, status    string
	}{
		{"stop waits", `{"os-stop": null}`, "wait=30", 200, "wait=30", "SHUTOFF"},
		{"among other preferences", `{"os-start": null}`, `respond-async, wait="10"; x=1`, 200, "wait=10", "ACTIVE"},
		{"cut to the longest wait", `{"reboot": {"type": "SOFT"}}`, "wait=3600", 200, "wait=60", "ACTIVE"},
		{"malformed: ignored", `{"os-stop": null}`, "wait=soon", 202, "", "SHUTOFF"},
		{"zero: ignored", `{"os-start": null}`, "wait=0", 202, "", "ACTIVE"},
		{"not ended in time", `{"resize": {"flavorRef": "m1.small"}}`, "wait=1", 202, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := n.CallHeader(t, "POST", "/v2.1/servers/"+id+"/action", tt.body, map[string]string{"Prefer": tt.prefer})
			if r.Code != tt.code || r.Header.Get("Preference-Applied") != tt.applied {
				t.Fatalf("%d, Preference-Applied %q: %s; want %d and %q", r.Code, r.Header.Get("Preference-Applied"), r.Raw, tt.code, tt.applied)
			}
			if tt.code == http.StatusAccepted {
				if r.Raw != "" {
					t.Fatalf("a 202 with a body: %s", r.Raw)
				}
				if tt.status != "" {
					if in := n.Settle(t, id); in.Status != tt.status {
						t.Fatalf("the action ended %s, want %s", in.Status, tt.status)
					}
				}
				return
			}
			srv := r.Body["server"].(map[string]any)
			if srv["id"] != id || srv["status"] != tt.status || srv["OS-EXT-STS:task_state"] != nil {
				t.Fatalf("answered %s, want %s with no task", r.Raw, tt.status)
			}
			if show := n.Call(t, "GET", "/v2.1/servers/"+id, ""); show.Body["server"].(map[string]any)["status"] != tt.status {
				t.Fatalf("a GET after the answer shows %s", show.Raw)
			}
		})
	}
	if in := n.Call(t, "GET", "/v1/instances/"+id, "").Body["instance"].(map[string]any); in["status"] != "RESIZE" && in["status"] != "QUEUE_RESIZE" && in["status"] != "PREP_RESIZE" {
		t.Fatalf("the resize that did not end in time is %v, want it still in flight", in["status"])
	}
}
