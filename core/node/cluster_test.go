package node_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/core/store"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// Two lucid serve processes on an etcd neither of them hosts, each with
// its own fake driver. Node a starts first and leads the orphans
// election; it is killed (-9) during a slow step. Its lease expires, the
// election moves to b, and b ends a's orphaned transition per the default
// policy (ERROR with a fault naming the lost node and the action) within
// lease TTL + one interval (+ scheduling slack).
func TestOrphanResolvedByTheOtherNode(t *testing.T) {
	for _, tt := range []struct{ settings, want string }{{`{}`, "ERROR"}, {`{ on_orphan = "adopt" }`, "ACTIVE"}} {
		t.Run(tt.settings, func(t *testing.T) { orphanScenario(t, tt.settings, tt.want) })
	}
}

// orphanScenario runs the scenario under the reconcile settings and
// expects the orphan to end in want: ERROR (correct) or ACTIVE (adopted
// by b, which runs the same driver, and finished there).
func orphanScenario(t *testing.T, settings, want string) {
	etcd := testenv.Etcd(t)
	extra := `
lease_ttl = "2s"
auth { enabled = false }
policy "reconcile" {
  module   = "` + testenv.Wasm(t, "./policies/reconcile") + `"
  settings = ` + settings + `
  timeout  = "5s"
}
reconciler {
  enabled  = true
  interval = "200ms"
}
`
	cfgA := testnode.Config(t, testnode.Options{Name: "a", Driver: `boot_delay = "1h"`, Store: fmt.Sprintf("endpoints = [%q]", etcd.ClientURL()), Extra: extra})
	cfgB := testnode.Config(t, testnode.Options{Name: "b", Store: fmt.Sprintf("endpoints = [%q]", etcd.ClientURL()), Extra: extra})
	a, clA := serve(t, cfgA)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Endpoints: []string{etcd.ClientURL()}, Prefix: "/lucid"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	testenv.Eventually(t, 10*time.Second, func() bool {
		l, _ := st.Leader(ctx, "orphans")
		return l == "a"
	}, "a never led the orphans election")
	_, clB := serve(t, cfgB)

	id, r, err := clA.Create(ctx, client.CreateRequest{Name: "orphan", FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := clB.Instance(ctx, id); in.Status != "BUILD" || in.Node != "a" {
		t.Fatalf("b sees %s on %s, want BUILD on a", in.Status, in.Node)
	}
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	killed := time.Now()

	testenv.Eventually(t, 30*time.Second, func() bool {
		in, err := clB.Instance(ctx, id)
		return err == nil && in.Transition == nil
	}, "b never resolved a's orphan")
	took := time.Since(killed)
	in, _ := clB.Instance(ctx, id)
	h, _ := clB.History(ctx, id)
	if want == "ACTIVE" {
		if in.Status != "ACTIVE" || in.Node != "b" {
			t.Fatalf("adopted orphan ended %s on %s (fault %+v)", in.Status, in.Node, in.Fault)
		}
		testnode.AssertHistory(t, h, []testnode.Step{
			{"", "BUILD", "create", "api", r.RequestID},
			{"BUILD", "ACTIVE", "create", "driver", r.RequestID},
		})
	} else {
		if in.Status != "ERROR" || in.Fault == nil || !strings.Contains(in.Fault.Message, "node a") || !strings.Contains(in.Fault.Message, "create") {
			t.Fatalf("orphan ended %s with fault %+v", in.Status, in.Fault)
		}
		testnode.AssertHistory(t, h, []testnode.Step{
			{"", "BUILD", "create", "api", r.RequestID},
			{"BUILD", "ERROR", "create", "reconciler", r.RequestID},
		})
	}
	if l, _ := st.Leader(ctx, "orphans"); l != "b" {
		t.Fatalf("the election did not move to b: leader %q", l)
	}
	t.Logf("orphan resolved %v after a was killed (lease TTL 2s, interval 200ms)", took.Round(10*time.Millisecond))
}
