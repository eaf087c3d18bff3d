package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// TestNodeRunsOneInstancesWatch: a node watches the instances once, with
// the executor's watch, which also answers its long-polls and keeps its
// View (it used to run a second one for the long-polls). etcd's own
// gauge of watchers says so while an action is in flight and a long-poll
// waits on it (a create whose spawn takes an hour). Authentication is off: its token store has a
// watch of its own, which is not the instances'.
func TestNodeRunsOneInstancesWatch(t *testing.T) {
	n := testnode.Start(t, testnode.Options{Extra: "auth {\n  enabled = false\n}\n", Driver: `boot_delay = "1h"`})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, _, err := n.Client.Create(ctx, client.CreateRequest{Name: "w", FlavorRef: "m1.tiny", ImageRef: "cirros"})
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := n.Client.Wait(ctx, id, "", nil)
		waited <- err
	}()
	testenv.Eventually(t, 10*time.Second, func() bool { return n.Feed.Waiting() == 1 }, "no long-poll waiting")
	if got := scrape(t, n, "etcd_debugging_mvcc_watcher_total"); got != 1 {
		t.Fatalf("etcd has %v watchers while a long-poll waits on an action, want 1 (the executor's)", got)
	}
	if st := n.Status(t, id); st != "BUILD" {
		t.Fatalf("%s is %s, want BUILD while its spawn takes an hour", id, st)
	}
	cancel()
	<-waited
}
