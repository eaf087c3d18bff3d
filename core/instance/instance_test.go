package instance

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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
		{"unknown vm_state shows ERROR", "exploded", nil, StatusError},
		{"create in flight", Building, build, StatusBuild},
		{"resize second step", Active, resize, StatusPrepResize},
		{"step past the end shows the last", Active, &Transition{Steps: []Status{StatusDeleting}, Step: 5}, StatusDeleting},
		{"confirm shows no step", Resized, &Transition{Action: ActionConfirmResize}, StatusVerifyResize},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Derive(State{VMState: c.vm}, c.t); got != c.want {
				t.Fatalf("Derive = %s, want %s", got, c.want)
			}
		})
	}
}

// Every status is one row; settled rows have a vm_state and no task_state,
// in-flight rows the reverse.
func TestStatusTable(t *testing.T) {
	all := []Status{StatusBuild, StatusActive, StatusShutoff, StatusError, StatusRebuild, StatusQueueResize,
		StatusPrepResize, StatusResize, StatusVerifyResize, StatusRevertResize, StatusStopping, StatusStarting,
		StatusReboot, StatusHardReboot, StatusDeleting, StatusDeleted}
	rows := Statuses()
	if len(rows) != len(all) {
		t.Fatalf("status table has %d rows, want %d", len(rows), len(all))
	}
	for _, s := range all {
		r, ok := s.Row()
		if !ok {
			t.Fatalf("%s has no row", s)
		}
		if r.Settled != "" {
			if got, err := SettledState(s); err != nil || got != r.Settled || SettledStatus(r.Settled) != s {
				t.Errorf("%s: settled round trip %s, %v", s, got, err)
			}
		} else if _, err := SettledState(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s is shown only in flight, SettledState = %v", s, err)
		}
		inFlight := TaskState(&Transition{Steps: []Status{s}})
		if (r.TaskState == "") == (r.Settled == "") && s != StatusBuild {
			t.Errorf("%s: settled %q and task_state %q: exactly one expected", s, r.Settled, r.TaskState)
		}
		if inFlight != r.TaskState {
			t.Errorf("%s: TaskState %q, row %q", s, inFlight, r.TaskState)
		}
	}
	if TaskState(nil) != "" {
		t.Fatal("no transition, no task")
	}
	for p, code := range map[PowerState]int{NoState: 0, Running: 1, Paused: 3, Shutdown: 4, Crashed: 6, "weird": 0} {
		if PowerCode(p) != code {
			t.Errorf("PowerCode(%s) = %d, want %d", p, PowerCode(p), code)
		}
	}
}

// The action table, pinned row by row: where each action may start, what
// it shows, where it ends from each origin, and how it fails.
func TestActionTable(t *testing.T) {
	a, s, e, v := StatusActive, StatusShutoff, StatusError, StatusVerifyResize
	cases := []struct {
		action      Action
		from        []Status
		shows       []Status
		ends        map[Status]Status // origin -> success
		originUntil int
		preempts    bool
		capability  string
	}{
		{ActionCreate, nil, []Status{StatusBuild}, map[Status]Status{"": a}, 0, false, ""},
		{ActionDelete, nil, []Status{StatusDeleting}, map[Status]Status{a: StatusDeleted, StatusBuild: StatusDeleted}, 0, true, ""},
		{ActionRebuild, []Status{a, s, e}, []Status{StatusRebuild}, map[Status]Status{a: a, s: s, e: a}, 0, false, "rebuild"},
		{ActionResize, []Status{a, s}, []Status{StatusQueueResize, StatusPrepResize, StatusResize}, map[Status]Status{a: v, s: v}, 2, false, "resize"},
		{ActionConfirmResize, []Status{v}, nil, map[Status]Status{v: a}, 0, false, "resize"},
		{ActionRevertResize, []Status{v}, []Status{StatusRevertResize}, map[Status]Status{v: a}, 0, false, "resize"},
		{ActionStop, []Status{a, e}, []Status{StatusStopping}, map[Status]Status{a: s, e: s}, 1, false, ""},
		{ActionStart, []Status{s}, []Status{StatusStarting}, map[Status]Status{s: a}, 1, false, ""},
		{ActionReboot, []Status{a}, []Status{StatusReboot}, map[Status]Status{a: a}, 0, false, ""},
		{ActionHardReboot, []Status{a, s, e}, []Status{StatusHardReboot}, map[Status]Status{a: a, s: a, e: a}, 0, false, ""},
	}
	if len(cases) != len(Actions()) {
		t.Fatalf("table has %d actions, test pins %d", len(Actions()), len(cases))
	}
	for _, c := range cases {
		t.Run(string(c.action), func(t *testing.T) {
			sp, err := Lookup(c.action)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sp.From, c.from) || !slices.Equal(sp.Shows(), c.shows) || sp.OriginUntil != c.originUntil ||
				sp.Preempts != c.preempts || sp.Capability != c.capability || !sp.Runnable() {
				t.Fatalf("row %+v", sp)
			}
			for origin, want := range c.ends {
				if got := sp.Success(origin, State{}); got != want {
					t.Errorf("from %q ends %s, want %s", origin, got, want)
				}
			}
			for _, st := range sp.Shows() {
				if r, ok := st.Row(); !ok || r.Settled != "" && st != StatusBuild {
					t.Errorf("step %s is not an in-flight status", st)
				}
			}
			for i := range sp.Steps {
				if sp.FailsToOrigin(i) != (i < c.originUntil) {
					t.Errorf("step %d fails to origin: %v", i, sp.FailsToOrigin(i))
				}
			}
		})
	}
	start, _ := Lookup(ActionStart)
	stop, _ := Lookup(ActionStop)
	if start.Allows(StatusActive, CauseAPI) || !start.Allows(StatusActive, CauseReconciler) || !stop.Allows(StatusShutoff, CauseReconciler) ||
		stop.Allows(StatusShutoff, CauseAPI) || start.Allows(StatusError, CauseReconciler) {
		t.Fatal("only the reconciler may start or stop to enforce the record")
	}
	if _, err := Lookup("teleport"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown action: %v", err)
	}
}

func TestBegin(t *testing.T) {
	stop, _ := Lookup(ActionStop)
	tr := stop.Begin(StatusActive, State{}, "req-1", "n1", Request{})
	if tr.Current() != StatusStopping || tr.Target != StatusShutoff || tr.Origin != StatusActive || tr.Node != "n1" ||
		tr.Attempt != 1 || tr.Schema != TransitionSchema {
		t.Fatalf("stop transition %+v", tr)
	}
	if op, ok := stop.Op(tr); !ok || op != OpPowerOff || !stop.Last(tr) {
		t.Fatalf("stop op %s %v", op, ok)
	}
	// Begin copies the steps: changing a transition never changes the table.
	tr.Steps[0] = "X"
	if again, _ := Lookup(ActionStop); again.Steps[0].Status != StatusStopping {
		t.Fatal("Begin aliased the table's steps")
	}
	confirm, _ := Lookup(ActionConfirmResize)
	ct := confirm.Begin(StatusVerifyResize, State{ResizedFrom: StatusShutoff}, "r", "n", Request{})
	if len(ct.Steps) != 0 || ct.Target != StatusShutoff || ct.Current() != "" {
		t.Fatalf("confirm of a resized SHUTOFF instance: %+v", ct)
	}
	if op, ok := confirm.Op(ct); !ok || op != OpConfirmResize {
		t.Fatalf("confirm op %s %v", op, ok)
	}
}

func TestChecks(t *testing.T) {
	small := Flavor{ID: "m1.small", VCPUs: 1, RAMMB: 2048, DiskGB: 20}
	st := State{ID: "i", Flavor: small}
	resize, _ := Lookup(ActionResize)
	rebuild, _ := Lookup(ActionRebuild)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"resize to nothing", resize.Check(st, Request{}), "needs a flavorRef"},
		{"resize to the same", resize.Check(st, Request{Flavor: &small}), "already has flavor m1.small"},
		{"resize to a smaller disk", resize.Check(st, Request{Flavor: &Flavor{ID: "m1.tiny", DiskGB: 1}}), "disks cannot shrink"},
		{"resize up", resize.Check(st, Request{Flavor: &Flavor{ID: "m1.medium", DiskGB: 40}}), ""},
		{"rebuild without image", rebuild.Check(st, Request{}), "needs an imageRef"},
		{"rebuild", rebuild.Check(st, Request{Image: &Image{ID: "cirros"}}), ""},
	}
	for _, c := range cases {
		if c.want == "" {
			if c.err != nil {
				t.Errorf("%s: %v", c.name, c.err)
			}
			continue
		}
		if !errors.Is(c.err, ErrInvalid) || !contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid saying %q", c.name, c.err, c.want)
		}
	}
}

// A resize keeps both flavors until it is confirmed or reverted.
func TestResizeAppliesAndReverts(t *testing.T) {
	small, big := Flavor{ID: "small", DiskGB: 1}, Flavor{ID: "big", DiskGB: 2}
	resize, _ := Lookup(ActionResize)
	confirm, _ := Lookup(ActionConfirmResize)
	revert, _ := Lookup(ActionRevertResize)

	st := State{Flavor: small}
	tr := resize.Begin(StatusShutoff, st, "r", "n", Request{Flavor: &big})
	resize.Applies(&st, tr)
	if st.Flavor != big || st.OldFlavor == nil || *st.OldFlavor != small || st.ResizedFrom != StatusShutoff {
		t.Fatalf("after resize: %+v", st)
	}
	reverted := st
	revert.Applies(&reverted, nil)
	if reverted.Flavor != small || reverted.OldFlavor != nil || reverted.ResizedFrom != "" {
		t.Fatalf("after revert: %+v", reverted)
	}
	confirmed := st
	confirm.Applies(&confirmed, nil)
	if confirmed.Flavor != big || confirmed.OldFlavor != nil {
		t.Fatalf("after confirm: %+v", confirmed)
	}
}

func TestDecodeMigrates(t *testing.T) {
	// A schema 1 record, as the first Lucid wrote it.
	v1 := `{"id":"a","name":"web","vm_state":"active","power_state":"running","flavor":"m1.small","image":"cirros","node":"local","driver":"fake","history_seq":2}`
	st, err := DecodeState([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	if st.Schema != StateSchema || st.Flavor != (Flavor{ID: "m1.small", Name: "m1.small"}) || st.Image.ID != "cirros" || st.HistorySeq != 2 {
		t.Fatalf("migrated %+v", st)
	}
	tr, err := DecodeTransition([]byte(`{"action":"stop","steps":["STOPPING"],"args":{"x":"y"},"node":"local"}`))
	if err != nil || tr.Schema != TransitionSchema || tr.Current() != StatusStopping {
		t.Fatalf("migrated transition %+v, %v", tr, err)
	}
	if _, err := DecodeState([]byte(fmt.Sprintf(`{"schema":%d,"id":"a"}`, StateSchema+1))); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("newer schema: %v", err)
	}
	if _, err := DecodeState([]byte(`{"id":`)); err == nil {
		t.Fatal("garbage decoded")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Every place schema 1 put a bare id is read, in any mix with the current
// objects, and only a bare id is: any other misfit is still an error.
func TestDecodeBareIDs(t *testing.T) {
	small := Flavor{ID: "m1.small", Name: "m1.small"}
	built := Flavor{ID: "m1.big", VCPUs: 2}
	cirros := Image{ID: "cirros", Name: "cirros"}
	for _, tc := range []struct {
		name      string
		in        string
		flavor    Flavor
		oldFlavor *Flavor
		image     Image
		err       string
	}{
		{"current", `{"schema":2,"flavor":{"id":"m1.big","vcpus":2},"image":{"id":"cirros","name":"cirros"}}`, built, nil, cirros, ""},
		{"schema 1", `{"flavor":"m1.small","image":"cirros"}`, small, nil, cirros, ""},
		{"bare image only", `{"flavor":{"id":"m1.big","vcpus":2},"image":"cirros"}`, built, nil, cirros, ""},
		{"bare old flavor", `{"flavor":{"id":"m1.big","vcpus":2},"old_flavor":"m1.small","image":"cirros"}`, built, &small, cirros, ""},
		{"object old flavor beside a bare flavor", `{"flavor":"m1.small","old_flavor":{"id":"m1.big","vcpus":2}}`, small, &built, Image{}, ""},
		{"null flavor beside a bare image", `{"flavor":null,"image":"cirros"}`, Flavor{}, nil, cirros, ""},
		{"a number is no id", `{"flavor":7}`, Flavor{}, nil, Image{}, "cannot unmarshal number"},
		{"another misfit beside a bare id", `{"flavor":"m1.small","history_seq":"x"}`, Flavor{}, nil, Image{}, "cannot unmarshal string"},
		{"a misfit inside a flavor beside a bare image", `{"flavor":{"vcpus":"2"},"image":"cirros"}`, Flavor{}, nil, Image{}, "cannot unmarshal string into Go struct field Flavor.flavor.vcpus"},
		{"a misfit inside a flavor after a bare image", `{"image":"cirros","flavor":{"vcpus":"2"}}`, Flavor{}, nil, Image{}, "flavor: json: cannot unmarshal string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := DecodeState([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("DecodeState = %+v, %v; want an error containing %q", st, err, tc.err)
				}
				return
			}
			if err != nil || st.Flavor != tc.flavor || st.Image != tc.image || (st.OldFlavor == nil) != (tc.oldFlavor == nil) ||
				(st.OldFlavor != nil && *st.OldFlavor != *tc.oldFlavor) || st.Schema != StateSchema {
				t.Fatalf("DecodeState = %+v (old flavor %v), %v; want flavor %+v, old %v, image %+v", st, st.OldFlavor, err, tc.flavor, tc.oldFlavor, tc.image)
			}
		})
	}
	tr, err := DecodeTransition([]byte(`{"action":"resize","steps":["RESIZE"],"flavor":"m1.small","image":{"id":"cirros","name":"cirros"}}`))
	if err != nil || tr.Flavor == nil || *tr.Flavor != small || tr.Image == nil || *tr.Image != cirros || tr.Current() != StatusResize {
		t.Fatalf("DecodeTransition = %+v, %v; want the bare flavor read", tr, err)
	}
	if tr, err := DecodeTransition([]byte(`{"action":"resize","image":3}`)); err == nil {
		t.Fatalf("DecodeTransition = %+v; want an error for a number image", tr)
	}
}
