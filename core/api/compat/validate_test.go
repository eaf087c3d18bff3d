package compat_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// validate.py fails what it must: each exchange below breaks one rule,
// except the first, and each must be reported, once.
func TestValidatorRejects(t *testing.T) {
	requireClients(t)
	v21 := map[string][]string{"X-Openstack-Nova-Api-Version": {"2.1"}, "Openstack-Api-Version": {"compute 2.1"}}
	v219 := map[string][]string{"X-Openstack-Nova-Api-Version": {"2.19"}, "Openstack-Api-Version": {"compute 2.19"}}
	const server = `"id":"i","name":"n","status":"ACTIVE","tenant_id":"p","user_id":"u","metadata":{},"hostId":"","addresses":{},` +
		`"image":{"id":"c","links":[{"href":"http://h/images/c","rel":"bookmark"}]},"flavor":{"id":"f","links":[{"href":"http://h/flavors/f","rel":"bookmark"}]},` +
		`"created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z","links":[{"href":"http://h/v2.1/servers/i","rel":"self"}]`
	rec := &recorder{log: []exchange{
		{Method: "GET", Path: "/v2.1/servers/i", Status: 200, Headers: v21, Body: `{"server":{` + server + `}}`},
		{Method: "GET", Path: "/v2.1/servers/i", Status: 200, Headers: v21, Body: `{"server":{` + server + `,"lucid:transition":{}}}`},
		{Method: "GET", Path: "/v2.1/servers/i", Status: 200, Headers: v219, Body: `{"server":{` + server + `}}`},
		{Method: "GET", Path: "/v2.1/servers/i", Status: 200, Headers: map[string][]string{}, Body: `{"server":{` + server + `}}`},
		{Method: "GET", Path: "/v2.1/os-hypervisors", Status: 200, Headers: v21, Body: `{}`},
		{Method: "GET", Path: "/v2.1/servers", Status: 500, Headers: v21, Body: `{"computeFault":{"code":500,"message":"x"}}`},
		{Method: "GET", Path: "/v2.1/servers/x", Status: 404, Headers: v21, Body: `{"itemNotFound":{"code":400,"message":"x"}}`},
		{Method: "POST", Path: "/v2.1/servers/i/action", RequestBody: `{"os-stop":null}`, Status: 202, Headers: v21, Body: `{"server":{}}`},
	}}
	path := filepath.Join(t.TempDir(), "exchanges.jsonl")
	rec.write(t, path)
	out, err := exec.Command(python, "validate.py", path).CombinedOutput()
	if err == nil {
		t.Fatalf("validate.py passed broken exchanges:\n%s", out)
	}
	fails := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "FAIL ") {
			fails++
		}
	}
	if fails != 7 || !strings.Contains(string(out), `"validated": 1`) {
		t.Fatalf("validate.py reported %d failures, want 7, and 1 validated:\n%s", fails, out)
	}
}
