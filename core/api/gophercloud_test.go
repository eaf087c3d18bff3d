package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/lucid-project/lucid/internal/testenv"
	"github.com/lucid-project/lucid/internal/testnode"
)

// gophercloudClient is a compute client from gophercloud, the Go SDK of
// OpenStack, as its users make one: it authenticates with identity v3 at
// the node's /identity/v3 with the admin's clouds.yaml credentials and
// finds the compute endpoint in the token's catalog.
func gophercloudClient(t *testing.T, n *testnode.Node) *gophercloud.ServiceClient {
	t.Helper()
	ctx := context.Background()
	pc, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint: n.Cloud.Auth.AuthURL, Username: n.Cloud.Auth.Username, Password: n.Cloud.Auth.Password,
		TenantName: n.Cloud.Auth.ProjectName, DomainName: n.Cloud.Auth.UserDomainName,
	})
	if err != nil {
		t.Fatalf("gophercloud: authenticate: %v", err)
	}
	pc.HTTPClient = http.Client{Timeout: 30 * time.Second}
	sc, err := openstack.NewComputeV2(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatalf("gophercloud: compute endpoint: %v", err)
	}
	if sc.Endpoint != n.Base+"/v2.1/" {
		t.Fatalf("gophercloud found compute at %s, want %s/v2.1/", sc.Endpoint, n.Base)
	}
	return sc
}

// gophercloud drives rebuild, resize with confirm and with revert, a hard
// reboot and a delete, and the history shows exactly the statuses each
// action declares.
func TestGophercloud(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})
	sc := gophercloudClient(t, n)
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
