package instance

import (
	"errors"
	"slices"
	"testing"
)

func TestDerive(t *testing.T) {
	build := &Transition{Action: ActionCreate, Steps: []Status{StatusBuild}}
	resize := &Transition{Action: ActionResize, Steps: []Status{StatusQueueResize, StatusPrepResize, StatusResize}, Step: 1}
	cases := []struct {
		name string
		vm   VMState
		t    *Transition
		want Status
	}{
		{"settled active", Active, nil, StatusActive},
		{"settled stopped", Stopped, nil, StatusShutoff},
		{"settled error", Error, nil, StatusError},
		{"settled resized", Resized, nil, StatusVerifyResize},
		{"create in flight", Building, build, StatusBuild},
		{"resize second step", Active, resize, StatusPrepResize},
		{"step past the end shows the last", Active, &Transition{Steps: []Status{StatusDeleting}, Step: 5}, StatusDeleting},
		{"transition without steps shows the state", Active, &Transition{Action: ActionConfirmResize}, StatusActive},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Derive(State{VMState: c.vm}, c.t); got != c.want {
				t.Fatalf("Derive = %s, want %s", got, c.want)
			}
		})
	}
}

func TestSettledRoundTrip(t *testing.T) {
	for _, vm := range []VMState{Building, Active, Stopped, Resized, Error, Deleted} {
		got, err := SettledState(SettledStatus(vm))
		if err != nil || got != vm {
			t.Fatalf("%s -> %s -> %s, %v", vm, SettledStatus(vm), got, err)
		}
	}
	if _, err := SettledState(StatusRebuild); !errors.Is(err, ErrInvalid) {
		t.Fatalf("REBUILD is not settled: %v", err)
	}
}

// The plans are DESIGN.md section 3's table; this pins them.
func TestPlans(t *testing.T) {
	cases := []struct {
		action  Action
		from    []Status
		steps   []Status
		success Status
	}{
		{ActionCreate, nil, []Status{StatusBuild}, StatusActive},
		{ActionRebuild, []Status{StatusActive, StatusShutoff, StatusError}, []Status{StatusRebuild}, ""},
		{ActionResize, []Status{StatusActive, StatusShutoff}, []Status{StatusQueueResize, StatusPrepResize, StatusResize}, StatusVerifyResize},
		{ActionStop, []Status{StatusActive, StatusError}, []Status{StatusStopping}, StatusShutoff},
		{ActionStart, []Status{StatusShutoff}, []Status{StatusStarting}, StatusActive},
		{ActionReboot, []Status{StatusActive}, []Status{StatusReboot}, StatusActive},
		{ActionHardReboot, []Status{StatusActive, StatusShutoff, StatusError}, []Status{StatusHardReboot}, StatusActive},
		{ActionDelete, nil, []Status{StatusDeleting}, StatusDeleted},
	}
	for _, c := range cases {
		p, err := PlanFor(c.action)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.From, c.from) || !slices.Equal(p.Steps, c.steps) || p.Success != c.success {
			t.Fatalf("%s: plan %+v", c.action, p)
		}
	}
	if _, err := PlanFor("teleport"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown action: %v", err)
	}
}

func TestAllowsAndBegin(t *testing.T) {
	stop, _ := PlanFor(ActionStop)
	if stop.Allows(StatusShutoff) || !stop.Allows(StatusActive) || !stop.Allows(StatusError) {
		t.Fatal("stop allows the wrong origins")
	}
	del, _ := PlanFor(ActionDelete)
	if !del.Allows(StatusBuild) || !del.Preempts {
		t.Fatal("delete must be allowed from anything and pre-empt")
	}
	tr := stop.Begin(StatusActive, "req-1", "n1", nil)
	if tr.Current() != StatusStopping || tr.Target != StatusShutoff || tr.Origin != StatusActive || tr.Node != "n1" || tr.Attempt != 1 {
		t.Fatalf("stop transition %+v", tr)
	}
	// Begin copies the steps: changing a transition never changes the plan.
	tr.Steps[0] = "X"
	if again, _ := PlanFor(ActionStop); again.Steps[0] != StatusStopping {
		t.Fatal("Begin aliased the plan's steps")
	}
	rebuild, _ := PlanFor(ActionRebuild)
	if got := rebuild.Begin(StatusShutoff, "r", "n", nil).Target; got != StatusShutoff {
		t.Fatalf("rebuild of SHUTOFF ends %s, want SHUTOFF", got)
	}
	if got := rebuild.Begin(StatusError, "r", "n", nil).Target; got != StatusActive {
		t.Fatalf("rebuild of ERROR ends %s, want ACTIVE", got)
	}
}

func TestTaskState(t *testing.T) {
	if TaskState(nil) != "" {
		t.Fatal("no transition, no task")
	}
	for _, s := range []Status{StatusBuild, StatusRebuild, StatusQueueResize, StatusPrepResize, StatusResize, StatusRevertResize, StatusStopping, StatusStarting, StatusReboot, StatusHardReboot, StatusDeleting} {
		if TaskState(&Transition{Steps: []Status{s}}) == "" {
			t.Fatalf("step %s has no task_state", s)
		}
	}
}
