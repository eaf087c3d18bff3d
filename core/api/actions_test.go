package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// active creates an instance and waits for ACTIVE.
func active(t *testing.T, n *testnode.Node, name string) string {
	t.Helper()
	id, _ := n.Create(t, name)
	if in := n.Settle(t, id); in.Status != "ACTIVE" {
		t.Fatalf("create ended %s", in.Status)
	}
	return id
}

// after returns the history from record index i on.
func after(t *testing.T, n *testnode.Node, id string, i int) []testnode.Step {
	t.Helper()
	var out []testnode.Step
	for _, h := range n.History(t, id)[i:] {
		out = append(out, testnode.Step{h.From, h.To, h.Action, h.Cause, h.RequestID})
	}
	return out
}

func assertSteps(t *testing.T, got, want []testnode.Step) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history:\n got %v\nwant %v", got, want)
	}
}

// Every row of the table through HTTP, with its exact history.
func TestRebuildResizeConfirmRevert(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	ctx := context.Background()

	t.Run("rebuild", func(t *testing.T) {
		// debian-12 needs 1 GB of RAM: build on m1.small.
		id, _, err := n.Client.Create(ctx, client.CreateRequest{Name: "rb", FlavorRef: "m1.small", ImageRef: "cirros"})
		if err != nil {
			t.Fatal(err)
		}
		n.Settle(t, id)
		if r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", `{"rebuild": {"imageRef": "nope"}}`); r.Code != http.StatusBadRequest {
			t.Fatalf("rebuild to an unknown image: %d %s", r.Code, r.Raw)
		}
		r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", `{"rebuild": {"imageRef": "debian-12", "name": "rb-2"}}`)
		if r.Code != http.StatusAccepted || r.Body["server"].(map[string]any)["id"] != id {
			t.Fatalf("rebuild: %d %s (Nova answers 202 with the server)", r.Code, r.Raw)
		}
		in := n.Settle(t, id)
		if in.Status != "ACTIVE" || in.Image.ID != "debian-12" || in.Name != "rb-2" {
			t.Fatalf("after rebuild: %s %s %s", in.Status, in.Image.ID, in.Name)
		}
		assertSteps(t, after(t, n, id, 2), []testnode.Step{
			{"ACTIVE", "REBUILD", "rebuild", "api", r.RequestID},
			{"REBUILD", "ACTIVE", "rebuild", "driver", r.RequestID},
		})
	})
	t.Run("rebuild of SHUTOFF stays SHUTOFF", func(t *testing.T) {
		id := active(t, n, "rbs")
		n.Action(t, id, `{"os-stop": null}`, http.StatusAccepted)
		n.Settle(t, id)
		req := n.Action(t, id, `{"rebuild": {"imageRef": "cirros"}}`, http.StatusAccepted)
		if in := n.Settle(t, id); in.Status != "SHUTOFF" || in.PowerState != "shutdown" {
			t.Fatalf("rebuild of SHUTOFF ended %s/%s", in.Status, in.PowerState)
		}
		assertSteps(t, after(t, n, id, 4), []testnode.Step{
			{"SHUTOFF", "REBUILD", "rebuild", "api", req},
			{"REBUILD", "SHUTOFF", "rebuild", "driver", req},
		})
	})
	t.Run("resize and confirm", func(t *testing.T) {
		id := active(t, n, "rc")
		req := n.Action(t, id, `{"resize": {"flavorRef": "m1.small"}}`, http.StatusAccepted)
		in := n.Settle(t, id)
		if in.Status != "VERIFY_RESIZE" || in.Flavor.ID != "m1.small" || in.OldFlavor == nil || in.OldFlavor.ID != "m1.tiny" || in.VMState != "resized" {
			t.Fatalf("after resize: %+v", in)
		}
		// While VERIFY_RESIZE, other actions conflict; confirm is 204.
		if r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", `{"os-stop": null}`); r.Code != http.StatusConflict {
			t.Fatalf("stop during VERIFY_RESIZE: %d", r.Code)
		}
		confirm := n.Action(t, id, `{"confirmResize": null}`, http.StatusNoContent)
		in = n.Settle(t, id)
		if in.Status != "ACTIVE" || in.Flavor.ID != "m1.small" || in.OldFlavor != nil {
			t.Fatalf("after confirm: %+v", in)
		}
		assertSteps(t, after(t, n, id, 2), []testnode.Step{
			{"ACTIVE", "QUEUE_RESIZE", "resize", "api", req},
			{"QUEUE_RESIZE", "PREP_RESIZE", "resize", "driver", req},
			{"PREP_RESIZE", "RESIZE", "resize", "driver", req},
			{"RESIZE", "VERIFY_RESIZE", "resize", "driver", req},
			{"VERIFY_RESIZE", "ACTIVE", "confirmResize", "driver", confirm},
		})
	})
	t.Run("resize of SHUTOFF and revert", func(t *testing.T) {
		id := active(t, n, "rr")
		n.Action(t, id, `{"os-stop": null}`, http.StatusAccepted)
		n.Settle(t, id)
		req := n.Action(t, id, `{"resize": {"flavorRef": "m1.medium"}}`, http.StatusAccepted)
		if in := n.Settle(t, id); in.Status != "VERIFY_RESIZE" || in.PowerState != "shutdown" {
			t.Fatalf("after resize: %s %s", in.Status, in.PowerState)
		}
		revert := n.Action(t, id, `{"revertResize": null}`, http.StatusAccepted)
		in := n.Settle(t, id)
		if in.Status != "SHUTOFF" || in.Flavor.ID != "m1.tiny" || in.OldFlavor != nil {
			t.Fatalf("after revert: %+v", in)
		}
		assertSteps(t, after(t, n, id, 4), []testnode.Step{
			{"SHUTOFF", "QUEUE_RESIZE", "resize", "api", req},
			{"QUEUE_RESIZE", "PREP_RESIZE", "resize", "driver", req},
			{"PREP_RESIZE", "RESIZE", "resize", "driver", req},
			{"RESIZE", "VERIFY_RESIZE", "resize", "driver", req},
			{"VERIFY_RESIZE", "REVERT_RESIZE", "revertResize", "api", revert},
			{"REVERT_RESIZE", "SHUTOFF", "revertResize", "driver", revert},
		})
	})
	_ = ctx
}

// Each failure rule, through the fake's fault knobs.
func TestFailureRules(t *testing.T) {
	cases := []struct {
		name, driver, body string
		setup              []string // actions before the one under test
		want               []string // statuses recorded by the action under test
		faultHas           string
	}{
		{"resize fails in QUEUE_RESIZE: back to origin", `fail_resize = "queue"`, `{"resize": {"flavorRef": "m1.small"}}`, nil,
			[]string{"QUEUE_RESIZE", "ACTIVE"}, "queue"},
		{"resize fails in PREP_RESIZE: back to origin", `fail_resize = "prepare"`, `{"resize": {"flavorRef": "m1.small"}}`, nil,
			[]string{"QUEUE_RESIZE", "PREP_RESIZE", "ACTIVE"}, "prepare"},
		{"resize fails in RESIZE: ERROR", `fail_resize = "finish"`, `{"resize": {"flavorRef": "m1.small"}}`, nil,
			[]string{"QUEUE_RESIZE", "PREP_RESIZE", "RESIZE", "ERROR"}, "finish"},
		{"resize of SHUTOFF fails in PREP_RESIZE: back to SHUTOFF", `fail_resize = "prepare"`, `{"resize": {"flavorRef": "m1.small"}}`, []string{`{"os-stop": null}`},
			[]string{"QUEUE_RESIZE", "PREP_RESIZE", "SHUTOFF"}, "prepare"},
		{"rebuild fails: ERROR", `fail_rebuild = "disk gone"`, `{"rebuild": {"imageRef": "cirros"}}`, nil,
			[]string{"REBUILD", "ERROR"}, "disk gone"},
		{"confirm fails: ERROR", `fail_confirm_resize = "stuck"`, `{"confirmResize": null}`, []string{`{"resize": {"flavorRef": "m1.small"}}`},
			[]string{"ERROR"}, "stuck"},
		{"revert fails: ERROR", `fail_revert_resize = "no old disk"`, `{"revertResize": null}`, []string{`{"resize": {"flavorRef": "m1.small"}}`},
			[]string{"REVERT_RESIZE", "ERROR"}, "no old disk"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := testnode.Start(t, testnode.Options{Driver: c.driver})
			id := active(t, n, "f")
			for _, s := range c.setup {
				n.Action(t, id, s, http.StatusAccepted)
				n.Settle(t, id)
			}
			before := len(n.History(t, id))
			want := http.StatusAccepted
			if strings.Contains(c.body, "confirmResize") {
				want = http.StatusNoContent
			}
			n.Action(t, id, c.body, want)
			in := n.Settle(t, id)
			var got []string
			for _, h := range n.History(t, id)[before:] {
				got = append(got, h.To)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("statuses %v, want %v", got, c.want)
			}
			if in.Fault == nil || !strings.Contains(in.Fault.Message, c.faultHas) {
				t.Fatalf("fault %+v, want it to say %q", in.Fault, c.faultHas)
			}
		})
	}
}

// A delete pre-empts a resize at each of its steps: the step is cancelled,
// the instance goes DELETING then away, and history shows exactly that.
func TestDeletePreemptsEachResizeStep(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Driver: `resize_delay = "400ms"`})
	ctx := context.Background()
	for _, step := range []string{"QUEUE_RESIZE", "PREP_RESIZE", "RESIZE"} {
		t.Run(step, func(t *testing.T) {
			id := active(t, n, "pre")
			resize := n.Action(t, id, `{"resize": {"flavorRef": "m1.small"}}`, http.StatusAccepted)
			testenv.Eventually(t, 10*time.Second, func() bool {
				in, err := n.Client.Instance(ctx, id)
				return err == nil && in.Status == step
			}, "resize never showed %s", step)
			del := n.Call(t, "DELETE", "/v2.1/servers/"+id, "")
			if del.Code != http.StatusNoContent {
				t.Fatalf("delete during %s: %d %s", step, del.Code, del.Raw)
			}
			n.Settle(t, id)
			want := []testnode.Step{{"ACTIVE", "QUEUE_RESIZE", "resize", "api", resize}}
			prev := "QUEUE_RESIZE"
			for _, s := range []string{"PREP_RESIZE", "RESIZE"} {
				if prev == step {
					break
				}
				want = append(want, testnode.Step{prev, s, "resize", "driver", resize})
				prev = s
			}
			want = append(want, testnode.Step{step, "DELETING", "delete", "api", del.RequestID}, testnode.Step{"DELETING", "DELETED", "delete", "driver", del.RequestID})
			assertSteps(t, after(t, n, id, 2), want)
		})
	}
}

// A driver without the optional capabilities (the minimal example) gets
// 409 naming the capability, and nothing is written; the core actions
// still work.
func TestMissingCapabilityIsRefusedUpFront(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Plugin: "./examples/driver-minimal"})
	id := active(t, n, "plain")
	before := n.History(t, id)
	for body, capability := range map[string]string{
		`{"rebuild": {"imageRef": "cirros"}}`:   "rebuild",
		`{"resize": {"flavorRef": "m1.small"}}`: "resize",
	} {
		r := n.Call(t, "POST", "/v2.1/servers/"+id+"/action", body)
		if r.Code != http.StatusConflict || !strings.Contains(r.Raw, `lacks the \"`+capability+`\" capability`) {
			t.Fatalf("%s on a driver without %s: %d %s", body, capability, r.Code, r.Raw)
		}
	}
	if after := n.History(t, id); len(after) != len(before) {
		t.Fatalf("refused actions wrote history: %v", after)
	}
	n.Action(t, id, `{"os-stop": null}`, http.StatusAccepted)
	if in := n.Settle(t, id); in.Status != "SHUTOFF" {
		t.Fatalf("stop on the minimal driver: %s", in.Status)
	}
}
