package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// gophercloudClient is a compute client from gophercloud, the Go SDK of
// OpenStack, pointed at the node without authentication.
func gophercloudClient(n *testnode.Node) *gophercloud.ServiceClient {
	pc := &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: 30 * time.Second}}
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: n.Base + "/v2.1/", ResourceBase: n.Base + "/v2.1/"}
}

// gophercloud drives rebuild, resize with confirm and with revert, a hard
// reboot and a delete, and the history shows exactly the statuses each
// action declares.
func TestGophercloud(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	sc := gophercloudClient(n)
	ctx := context.Background()

	srv, err := servers.Create(ctx, sc, servers.CreateOpts{Name: "gc", FlavorRef: "m1.tiny", ImageRef: "cirros"}, nil).Extract()
	if err != nil {
		t.Fatal(err)
	}
	id := srv.ID
	// waitFor polls through gophercloud until the server shows status
	// with no task in flight.
	waitFor := func(status string) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() bool {
			s, err := servers.Get(ctx, sc, id).Extract()
			if err != nil {
				t.Fatalf("gophercloud Get: %v", err)
			}
			return s.Status == status
		}, "server %s never %s", id, status)
		n.Settle(t, id)
	}
	waitFor("ACTIVE")

	if _, err := servers.Rebuild(ctx, sc, id, servers.RebuildOpts{ImageRef: "cirros", Name: "gc-2"}).Extract(); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	waitFor("ACTIVE")
	if err := servers.Resize(ctx, sc, id, servers.ResizeOpts{FlavorRef: "m1.small"}).ExtractErr(); err != nil {
		t.Fatalf("resize: %v", err)
	}
	waitFor("VERIFY_RESIZE")
	if err := servers.ConfirmResize(ctx, sc, id).ExtractErr(); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	waitFor("ACTIVE")
	if err := servers.Resize(ctx, sc, id, servers.ResizeOpts{FlavorRef: "m1.medium"}).ExtractErr(); err != nil {
		t.Fatalf("resize: %v", err)
	}
	waitFor("VERIFY_RESIZE")
	if err := servers.RevertResize(ctx, sc, id).ExtractErr(); err != nil {
		t.Fatalf("revert: %v", err)
	}
	waitFor("ACTIVE")
	if err := servers.Reboot(ctx, sc, id, servers.RebootOpts{Type: servers.HardReboot}).ExtractErr(); err != nil {
		t.Fatalf("hard reboot: %v", err)
	}
	waitFor("ACTIVE")
	if err := servers.Delete(ctx, sc, id).ExtractErr(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	n.Settle(t, id)

	var got []string
	for _, h := range n.History(t, id) {
		got = append(got, h.From+">"+h.To+" "+h.Action+" "+h.Cause)
	}
	want := []string{
		">BUILD create api", "BUILD>ACTIVE create driver",
		"ACTIVE>REBUILD rebuild api", "REBUILD>ACTIVE rebuild driver",
		"ACTIVE>QUEUE_RESIZE resize api", "QUEUE_RESIZE>PREP_RESIZE resize driver", "PREP_RESIZE>RESIZE resize driver", "RESIZE>VERIFY_RESIZE resize driver",
		"VERIFY_RESIZE>ACTIVE confirmResize driver",
		"ACTIVE>QUEUE_RESIZE resize api", "QUEUE_RESIZE>PREP_RESIZE resize driver", "PREP_RESIZE>RESIZE resize driver", "RESIZE>VERIFY_RESIZE resize driver",
		"VERIFY_RESIZE>REVERT_RESIZE revertResize api", "REVERT_RESIZE>ACTIVE revertResize driver",
		"ACTIVE>HARD_REBOOT hardReboot api", "HARD_REBOOT>ACTIVE hardReboot driver",
		"ACTIVE>DELETING delete api", "DELETING>DELETED delete driver",
	}
	if len(got) != len(want) {
		t.Fatalf("history:\n got %q\nwant %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("history record %d: got %q, want %q\nall: %q", i+1, got[i], want[i], got)
		}
	}
}
