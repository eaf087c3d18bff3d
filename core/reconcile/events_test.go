package reconcile

import (
	"slices"
	"testing"

	"github.com/lucid-project/lucid/sdk/driver"
)

// Pending events keep only each VM's newest, in the order the VMs first
// appeared; restarts are told once per driver; take empties the set.
func TestPendingKeepsTheNewestPerVM(t *testing.T) {
	p := newPending()
	p.add("fake", driver.Event{Kind: driver.EventPower, ID: "a", Power: driver.PowerShutdown})
	p.add("fake", driver.Event{Kind: driver.EventPower, ID: "b", Power: driver.PowerShutdown})
	p.add("other", driver.Event{Kind: driver.EventPower, ID: "a", Power: driver.PowerRunning})
	p.add("fake", driver.Event{Kind: driver.EventRestarted})
	p.add("fake", driver.Event{Kind: driver.EventPower, ID: "a", Power: driver.PowerRunning})
	p.add("fake", driver.Event{Kind: driver.EventVanished, ID: "b"})
	p.add("fake", driver.Event{Kind: driver.EventRestarted})

	select {
	case <-p.ready:
	default:
		t.Fatal("nothing signalled ready")
	}
	restarted, evs := p.take()
	if !slices.Equal(restarted, []string{"fake"}) {
		t.Errorf("restarted %v, want [fake]", restarted)
	}
	want := []driverEvent{
		{"fake", driver.Event{Kind: driver.EventPower, ID: "a", Power: driver.PowerRunning}},
		{"fake", driver.Event{Kind: driver.EventVanished, ID: "b"}},
		{"other", driver.Event{Kind: driver.EventPower, ID: "a", Power: driver.PowerRunning}},
	}
	if !slices.Equal(evs, want) {
		t.Errorf("events\n%+v\nwant\n%+v", evs, want)
	}
	if r, e := p.take(); len(r) != 0 || len(e) != 0 {
		t.Errorf("a second take returned %v %v", r, e)
	}
}
