package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/lucid-project/lucid/core/instance"
	sdk "github.com/lucid-project/lucid/sdk/policy"
)

// roundTrip encodes v as the host does, decodes it strictly into the SDK's
// type, encodes that, and checks nothing was lost or unknown.
func roundTrip(t *testing.T, v any, into any) {
	t.Helper()
	host, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(host))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("the SDK cannot decode what the host sends: %v\n%s", err, host)
	}
	guest, err := json.Marshal(into)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal(host, &a)
	_ = json.Unmarshal(guest, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("host and SDK disagree:\nhost:  %s\nguest: %s", host, guest)
	}
}

// TestWireMatchesSDK keeps the host's requests and the guest SDK's types in
// step: every field the host sends is one the SDK knows, with its value.
func TestWireMatchesSDK(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	req := benchRequest()
	req.Instance.Fault = &instance.Fault{Code: 500, Message: "disk gone", At: now, During: instance.ActionResize}
	req.Instance.Flags = []instance.Flag{{Kind: "power", Message: "off on the hypervisor", Since: now}}
	roundTrip(t, req.wire(), &sdk.ValidateRequest{})

	rr := ReconcileRequest{Now: now, Instance: req.Instance, Transition: req.Transition,
		Observed: Observation{Present: true, PowerState: instance.Shutdown}, Disagreeing: 90 * time.Second, Orphan: true}
	roundTrip(t, rr.wire(), &sdk.ReconcileRequest{})
}

// TestStatusesMatchSDK checks that the SDK names the same statuses.
func TestStatusesMatchSDK(t *testing.T) {
	pairs := map[instance.Status]sdk.Status{
		instance.StatusBuild: sdk.StatusBuild, instance.StatusActive: sdk.StatusActive, instance.StatusShutoff: sdk.StatusShutoff,
		instance.StatusError: sdk.StatusError, instance.StatusRebuild: sdk.StatusRebuild, instance.StatusQueueResize: sdk.StatusQueueResize,
		instance.StatusPrepResize: sdk.StatusPrepResize, instance.StatusResize: sdk.StatusResize, instance.StatusVerifyResize: sdk.StatusVerifyResize,
		instance.StatusRevertResize: sdk.StatusRevertResize, instance.StatusStopping: sdk.StatusStopping, instance.StatusStarting: sdk.StatusStarting,
		instance.StatusReboot: sdk.StatusReboot, instance.StatusHardReboot: sdk.StatusHardReboot, instance.StatusDeleting: sdk.StatusDeleting,
		instance.StatusDeleted: sdk.StatusDeleted,
	}
	for h, g := range pairs {
		if string(h) != string(g) {
			t.Errorf("host %q, SDK %q", h, g)
		}
	}
	for _, a := range []instance.Action{instance.ActionCreate, instance.ActionDelete, instance.ActionRebuild, instance.ActionResize,
		instance.ActionConfirmResize, instance.ActionRevertResize, instance.ActionStop, instance.ActionStart, instance.ActionReboot, instance.ActionHardReboot} {
		if _, err := instance.Lookup(a); err != nil {
			t.Error(err)
		}
	}
}
