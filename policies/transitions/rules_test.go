package main

import (
	"slices"
	"testing"

	"github.com/lucid-project/lucid/sdk/policy"
)

// tr returns the transition an executor following the table would write.
func tr(a policy.Action, origin, target policy.Status) *policy.Transition {
	return &policy.Transition{Action: a, Steps: plans[a].steps, Origin: origin, Target: target, Attempt: 1}
}

type change struct {
	name   string
	set    settings
	action policy.Action
	cause  policy.Cause
	from   policy.Status
	to     policy.Status
	t      *policy.Transition
	// want is "" for allowed, else the exact reason.
	want string
}

var (
	api = policy.CauseAPI
	drv = policy.CauseDriver
	rec = policy.CauseReconciler
	pol = policy.CausePolicy

	rebuild, hardReboot = policy.StatusRebuild, policy.StatusHardReboot
	queue, prep, resize = policy.StatusQueueResize, policy.StatusPrepResize, policy.StatusResize
	revert              = policy.StatusRevertResize
	reboot              = policy.StatusReboot

	plain = settings{}
)

// changes covers every row of the action table: each allowed start, a
// refused start, each step, each end, and each step's failure rule, plus
// the reconciler's and the operator's rules.
var changes = []change{
	// create: — → BUILD → ACTIVE, failure ERROR
	{"create starts", plain, policy.ActionCreate, api, "", build, tr("create", "", active), ""},
	{"create without transition", plain, policy.ActionCreate, api, "", build, nil, ""},
	{"create succeeds", plain, policy.ActionCreate, drv, build, active, tr("create", "", active), ""},
	{"create fails", plain, policy.ActionCreate, drv, build, errorS, tr("create", "", active), ""},
	{"no SHUTOFF during create", plain, policy.ActionCreate, drv, build, shutoff, tr("create", "", active), "create may not show SHUTOFF (from BUILD)"},
	{"create skips BUILD", plain, policy.ActionCreate, api, "", active, tr("create", "", active), "create may not go from nothing to ACTIVE (only to BUILD)"},
	{"create targets SHUTOFF", plain, policy.ActionCreate, api, "", build, tr("create", "", shutoff), "create from nothing may not target SHUTOFF (only ACTIVE)"},

	// rebuild: ACTIVE, SHUTOFF, ERROR → REBUILD → ACTIVE (SHUTOFF if it was), failure ERROR
	{"rebuild starts from ACTIVE", plain, policy.ActionRebuild, api, active, rebuild, tr("rebuild", active, active), ""},
	{"rebuild starts from SHUTOFF", plain, policy.ActionRebuild, api, shutoff, rebuild, tr("rebuild", shutoff, shutoff), ""},
	{"rebuild starts from ERROR", plain, policy.ActionRebuild, api, errorS, rebuild, tr("rebuild", errorS, active), ""},
	{"rebuild succeeds", plain, policy.ActionRebuild, drv, rebuild, active, tr("rebuild", active, active), ""},
	{"rebuild of ERROR ends ACTIVE", plain, policy.ActionRebuild, drv, rebuild, active, tr("rebuild", errorS, active), ""},
	{"rebuild of SHUTOFF ends SHUTOFF", plain, policy.ActionRebuild, drv, rebuild, shutoff, tr("rebuild", shutoff, shutoff), ""},
	{"rebuild fails", plain, policy.ActionRebuild, drv, rebuild, errorS, tr("rebuild", active, active), ""},
	{"rebuild of SHUTOFF may not end ACTIVE", plain, policy.ActionRebuild, drv, rebuild, active, tr("rebuild", shutoff, shutoff), "rebuild may not go from REBUILD to ACTIVE (only to SHUTOFF, ERROR)"},
	{"rebuild of SHUTOFF may not target ACTIVE", plain, policy.ActionRebuild, api, shutoff, rebuild, tr("rebuild", shutoff, active), "rebuild from SHUTOFF may not target ACTIVE (only SHUTOFF)"},
	{"rebuild fails back", plain, policy.ActionRebuild, drv, rebuild, shutoff, tr("rebuild", active, active), "rebuild may not go from REBUILD to SHUTOFF (only to ACTIVE, ERROR)"},
	{"rebuild from VERIFY_RESIZE", plain, policy.ActionRebuild, api, verifyResize, rebuild, tr("rebuild", verifyResize, verifyResize), "rebuild may not start from VERIFY_RESIZE (only from ACTIVE, SHUTOFF, ERROR)"},
	{"no BUILD during rebuild", plain, policy.ActionRebuild, drv, active, build, tr("rebuild", active, active), "rebuild may not show BUILD (from ACTIVE)"},
	{"no BUILD step declared by rebuild", plain, policy.ActionRebuild, drv, active, build,
		&policy.Transition{Action: "rebuild", Steps: []policy.Status{build}, Origin: active, Target: active}, "rebuild may not declare the steps BUILD (it shows REBUILD)"},

	// resize: ACTIVE, SHUTOFF → QUEUE_RESIZE → PREP_RESIZE → RESIZE → VERIFY_RESIZE;
	// failure back to the origin from QUEUE_RESIZE and PREP_RESIZE, ERROR from RESIZE
	{"resize starts", plain, policy.ActionResize, api, active, queue, tr("resize", active, verifyResize), ""},
	{"resize of SHUTOFF starts", plain, policy.ActionResize, api, shutoff, queue, tr("resize", shutoff, verifyResize), ""},
	{"resize preps", plain, policy.ActionResize, drv, queue, prep, tr("resize", active, verifyResize), ""},
	{"resize resizes", plain, policy.ActionResize, drv, prep, resize, tr("resize", active, verifyResize), ""},
	{"resize succeeds", plain, policy.ActionResize, drv, resize, verifyResize, tr("resize", active, verifyResize), ""},
	{"resize fails back while queued", plain, policy.ActionResize, drv, queue, active, tr("resize", active, verifyResize), ""},
	{"resize of SHUTOFF fails back while queued", plain, policy.ActionResize, drv, queue, shutoff, tr("resize", shutoff, verifyResize), ""},
	{"resize fails back in prep", plain, policy.ActionResize, drv, prep, active, tr("resize", active, verifyResize), ""},
	{"resize of SHUTOFF fails back in prep", plain, policy.ActionResize, drv, prep, shutoff, tr("resize", shutoff, verifyResize), ""},
	{"resize fails late", plain, policy.ActionResize, drv, resize, errorS, tr("resize", active, verifyResize), ""},
	{"resize fails to ERROR while queued", plain, policy.ActionResize, drv, queue, errorS, tr("resize", active, verifyResize), "resize may not go from QUEUE_RESIZE to ERROR (only to PREP_RESIZE, ACTIVE)"},
	{"resize fails to ERROR in prep", plain, policy.ActionResize, drv, prep, errorS, tr("resize", active, verifyResize), "resize may not go from PREP_RESIZE to ERROR (only to RESIZE, ACTIVE)"},
	{"resize fails back after the change", plain, policy.ActionResize, drv, resize, active, tr("resize", active, verifyResize), "resize may not go from RESIZE to ACTIVE (only to VERIFY_RESIZE, ERROR)"},
	{"resize fails back to another status", plain, policy.ActionResize, drv, queue, shutoff, tr("resize", active, verifyResize), "resize may not go from QUEUE_RESIZE to SHUTOFF (only to PREP_RESIZE, ACTIVE)"},
	{"resize skips a step", plain, policy.ActionResize, drv, queue, resize, tr("resize", active, verifyResize), "resize may not go from QUEUE_RESIZE to RESIZE (only to PREP_RESIZE, ACTIVE)"},
	{"resize goes backwards", plain, policy.ActionResize, drv, resize, prep, tr("resize", active, verifyResize), "resize may not go from RESIZE to PREP_RESIZE (only to VERIFY_RESIZE, ERROR)"},
	{"resize from ERROR", plain, policy.ActionResize, api, errorS, queue, tr("resize", errorS, verifyResize), "resize may not start from ERROR (only from ACTIVE, SHUTOFF)"},
	{"resize targets ACTIVE", plain, policy.ActionResize, api, active, queue, tr("resize", active, active), "resize from ACTIVE may not target ACTIVE (only VERIFY_RESIZE)"},

	// confirmResize: VERIFY_RESIZE → ACTIVE or SHUTOFF (the target) in one change, failure ERROR
	{"confirmResize to ACTIVE", plain, policy.ActionConfirmResize, api, verifyResize, active, tr("confirmResize", verifyResize, active), ""},
	{"confirmResize to SHUTOFF", plain, policy.ActionConfirmResize, api, verifyResize, shutoff, tr("confirmResize", verifyResize, shutoff), ""},
	{"confirmResize without transition", plain, policy.ActionConfirmResize, api, verifyResize, shutoff, nil, ""},
	{"confirmResize fails", plain, policy.ActionConfirmResize, drv, verifyResize, errorS, tr("confirmResize", verifyResize, active), ""},
	{"confirmResize to another status than its target", plain, policy.ActionConfirmResize, drv, verifyResize, shutoff, tr("confirmResize", verifyResize, active), "confirmResize may not go from VERIFY_RESIZE to SHUTOFF (only to ACTIVE, ERROR)"},
	{"confirmResize targets VERIFY_RESIZE", plain, policy.ActionConfirmResize, drv, verifyResize, active, tr("confirmResize", verifyResize, verifyResize), "confirmResize from VERIFY_RESIZE may not target VERIFY_RESIZE (only ACTIVE, SHUTOFF)"},
	{"confirmResize from ACTIVE", plain, policy.ActionConfirmResize, api, active, shutoff, tr("confirmResize", active, shutoff), "confirmResize may not start from ACTIVE (only from VERIFY_RESIZE)"},
	{"confirmResize from ACTIVE fails", plain, policy.ActionConfirmResize, drv, active, errorS, tr("confirmResize", active, active), "confirmResize may not start from ACTIVE (only from VERIFY_RESIZE)"},
	{"confirmResize shows a step", plain, policy.ActionConfirmResize, api, verifyResize, revert, tr("confirmResize", verifyResize, active), "confirmResize may not show REVERT_RESIZE (from VERIFY_RESIZE)"},

	// revertResize: VERIFY_RESIZE → REVERT_RESIZE → ACTIVE or SHUTOFF (the target), failure ERROR
	{"revertResize starts", plain, policy.ActionRevertResize, api, verifyResize, revert, tr("revertResize", verifyResize, active), ""},
	{"revertResize ends ACTIVE", plain, policy.ActionRevertResize, drv, revert, active, tr("revertResize", verifyResize, active), ""},
	{"revertResize ends SHUTOFF", plain, policy.ActionRevertResize, drv, revert, shutoff, tr("revertResize", verifyResize, shutoff), ""},
	{"revertResize fails", plain, policy.ActionRevertResize, drv, revert, errorS, tr("revertResize", verifyResize, active), ""},
	{"revertResize ends off its target", plain, policy.ActionRevertResize, drv, revert, shutoff, tr("revertResize", verifyResize, active), "revertResize may not go from REVERT_RESIZE to SHUTOFF (only to ACTIVE, ERROR)"},
	{"revertResize back to VERIFY_RESIZE", plain, policy.ActionRevertResize, drv, revert, verifyResize, tr("revertResize", verifyResize, active), "revertResize may not show VERIFY_RESIZE (from REVERT_RESIZE)"},
	{"revertResize from SHUTOFF", plain, policy.ActionRevertResize, api, shutoff, revert, tr("revertResize", shutoff, shutoff), "revertResize may not start from SHUTOFF (only from VERIFY_RESIZE)"},

	// stop: ACTIVE, ERROR → STOPPING → SHUTOFF, failure back to the origin
	{"stop starts", plain, policy.ActionStop, api, active, stopping, tr("stop", active, shutoff), ""},
	{"stop succeeds", plain, policy.ActionStop, drv, stopping, shutoff, tr("stop", active, shutoff), ""},
	{"stop fails back", plain, policy.ActionStop, drv, stopping, active, tr("stop", active, shutoff), ""},
	{"stop of ERROR", plain, policy.ActionStop, api, errorS, stopping, tr("stop", errorS, shutoff), ""},
	{"stop of ERROR fails back", plain, policy.ActionStop, drv, stopping, errorS, tr("stop", errorS, shutoff), ""},
	{"stop fails to ERROR", plain, policy.ActionStop, drv, stopping, errorS, tr("stop", active, shutoff), "stop may not go from STOPPING to ERROR (only to SHUTOFF, ACTIVE)"},

	// start: SHUTOFF → STARTING → ACTIVE, failure back to the origin
	{"start starts", plain, policy.ActionStart, api, shutoff, starting, tr("start", shutoff, active), ""},
	{"start succeeds", plain, policy.ActionStart, drv, starting, active, tr("start", shutoff, active), ""},
	{"start fails back", plain, policy.ActionStart, drv, starting, shutoff, tr("start", shutoff, active), ""},
	{"start fails to ERROR", plain, policy.ActionStart, drv, starting, errorS, tr("start", shutoff, active), "start may not go from STARTING to ERROR (only to ACTIVE, SHUTOFF)"},
	{"start shows BUILD", plain, policy.ActionStart, drv, starting, build, tr("start", shutoff, active), "start may not show BUILD (from STARTING)"},

	// reboot: ACTIVE → REBOOT → ACTIVE; hardReboot: ACTIVE, SHUTOFF, ERROR → HARD_REBOOT → ACTIVE; failure ERROR
	{"reboot", plain, policy.ActionReboot, api, active, reboot, tr("reboot", active, active), ""},
	{"reboot ends", plain, policy.ActionReboot, drv, reboot, active, tr("reboot", active, active), ""},
	{"reboot fails", plain, policy.ActionReboot, drv, reboot, errorS, tr("reboot", active, active), ""},
	{"reboot of SHUTOFF", plain, policy.ActionReboot, api, shutoff, reboot, tr("reboot", shutoff, active), "reboot may not start from SHUTOFF (only from ACTIVE)"},
	{"reboot shows HARD_REBOOT", plain, policy.ActionReboot, drv, reboot, hardReboot, tr("reboot", active, active), "reboot may not show HARD_REBOOT (from REBOOT)"},
	{"hard reboot of ACTIVE", plain, policy.ActionHardReboot, api, active, hardReboot, tr("hardReboot", active, active), ""},
	{"hard reboot of SHUTOFF", plain, policy.ActionHardReboot, api, shutoff, hardReboot, tr("hardReboot", shutoff, active), ""},
	{"hard reboot of ERROR", plain, policy.ActionHardReboot, api, errorS, hardReboot, tr("hardReboot", errorS, active), ""},
	{"hard reboot ends", plain, policy.ActionHardReboot, drv, hardReboot, active, tr("hardReboot", shutoff, active), ""},
	{"hard reboot fails", plain, policy.ActionHardReboot, drv, hardReboot, errorS, tr("hardReboot", shutoff, active), ""},
	{"hard reboot fails back", plain, policy.ActionHardReboot, drv, hardReboot, shutoff, tr("hardReboot", shutoff, active), "hardReboot may not show SHUTOFF (from HARD_REBOOT)"},
	{"hard reboot of VERIFY_RESIZE", plain, policy.ActionHardReboot, api, verifyResize, hardReboot, tr("hardReboot", verifyResize, active), "hardReboot may not start from VERIFY_RESIZE (only from ACTIVE, SHUTOFF, ERROR)"},

	// delete: any status, also in flight → DELETING → DELETED, failure ERROR
	{"delete of ACTIVE", plain, policy.ActionDelete, api, active, deleting, tr("delete", active, deleted), ""},
	{"delete pre-empts STOPPING", plain, policy.ActionDelete, api, stopping, deleting, tr("delete", stopping, deleted), ""},
	{"delete of ERROR", plain, policy.ActionDelete, api, errorS, deleting, tr("delete", errorS, deleted), ""},
	{"delete of BUILD", plain, policy.ActionDelete, api, build, deleting, tr("delete", build, deleted), ""},
	{"delete ends", plain, policy.ActionDelete, drv, deleting, deleted, tr("delete", active, deleted), ""},
	{"delete fails", plain, policy.ActionDelete, drv, deleting, errorS, tr("delete", active, deleted), ""},
	{"delete fails back", plain, policy.ActionDelete, drv, deleting, active, tr("delete", active, deleted), "delete may not show ACTIVE (from DELETING)"},
	{"no BUILD during delete", plain, policy.ActionDelete, drv, deleting, build, tr("delete", active, deleted), "delete may not show BUILD (from DELETING)"},

	// the operator's forbid_actions: refuses starts, never an action in flight
	{"hard reboot forbidden", settings{ForbidActions: []policy.Action{"hardReboot"}}, policy.ActionHardReboot, api, active, hardReboot, tr("hardReboot", active, active), "hardReboot is forbidden by the operator (forbid_actions)"},
	{"forbidden hard reboot in flight may end", settings{ForbidActions: []policy.Action{"hardReboot"}}, policy.ActionHardReboot, drv, hardReboot, active, tr("hardReboot", active, active), ""},
	{"forbidden confirmResize", settings{ForbidActions: []policy.Action{"confirmResize"}}, policy.ActionConfirmResize, api, verifyResize, active, tr("confirmResize", verifyResize, active), "confirmResize is forbidden by the operator (forbid_actions)"},
	{"delete forbidden", settings{ForbidActions: []policy.Action{"delete"}}, policy.ActionDelete, api, active, deleting, tr("delete", active, deleted), "delete is forbidden by the operator (forbid_actions)"},

	// the reconciler between settled statuses: anything, ERROR included
	{"reconciler ACTIVE to SHUTOFF", plain, "", rec, active, shutoff, nil, ""},
	{"reconciler SHUTOFF to ACTIVE", plain, "", rec, shutoff, active, nil, ""},
	{"reconciler to ERROR", plain, "", rec, active, errorS, nil, ""},
	{"reconciler clears ERROR to ACTIVE", plain, "", rec, errorS, active, nil, ""},
	{"reconciler clears ERROR to SHUTOFF", plain, "", rec, errorS, shutoff, nil, ""},
	{"reconciler to BUILD", plain, "", rec, active, build, nil, "the reconciler may not change ACTIVE to BUILD outside an action"},
	{"reconciler to DELETED", plain, "", rec, shutoff, deleted, nil, "the reconciler may not change SHUTOFF to DELETED outside an action"},
	{"reconciler from VERIFY_RESIZE", plain, "", rec, verifyResize, active, nil, "the reconciler may not change VERIFY_RESIZE to ACTIVE outside an action"},
	{"driver between settled statuses", plain, "", drv, active, shutoff, nil, `unknown action "" may not change ACTIVE to SHUTOFF`},

	// the reconciler within an action: start it (enforce), end it in ERROR,
	// or roll it back where a failure may go back; never advance it
	{"reconciler enforces with start", plain, policy.ActionStart, rec, shutoff, starting, tr("start", shutoff, active), ""},
	{"reconciler enforces with stop", plain, policy.ActionStop, rec, active, stopping, tr("stop", active, shutoff), ""},
	{"reconciler ends a stuck rebuild in ERROR", plain, policy.ActionRebuild, rec, rebuild, errorS, tr("rebuild", active, active), ""},
	{"reconciler ends an orphaned stop in ERROR", plain, policy.ActionStop, rec, stopping, errorS, tr("stop", active, shutoff), ""},
	{"reconciler ends an orphaned create in ERROR", plain, policy.ActionCreate, rec, build, errorS, tr("create", "", active), ""},
	{"reconciler ends a queued resize in ERROR", plain, policy.ActionResize, rec, queue, errorS, tr("resize", active, verifyResize), ""},
	{"reconciler ends a delete in ERROR", plain, policy.ActionDelete, rec, deleting, errorS, tr("delete", active, deleted), ""},
	{"reconciler rolls an orphaned stop back", plain, policy.ActionStop, rec, stopping, active, tr("stop", active, shutoff), ""},
	{"reconciler rolls an orphaned start back", plain, policy.ActionStart, rec, starting, shutoff, tr("start", shutoff, active), ""},
	{"reconciler rolls a queued resize back", plain, policy.ActionResize, rec, queue, shutoff, tr("resize", shutoff, verifyResize), ""},
	{"reconciler rolls a resize in prep back", plain, policy.ActionResize, rec, prep, active, tr("resize", active, verifyResize), ""},
	{"reconciler may not roll a resize back after the change", plain, policy.ActionResize, rec, resize, active, tr("resize", active, verifyResize),
		"the reconciler may not take resize from RESIZE to ACTIVE (only start it, or end it in ERROR or back at its origin where it may fail back)"},
	{"reconciler may not roll a rebuild back", plain, policy.ActionRebuild, rec, rebuild, shutoff, tr("rebuild", shutoff, shutoff),
		"the reconciler may not take rebuild from REBUILD to SHUTOFF (only start it, or end it in ERROR or back at its origin where it may fail back)"},
	{"reconciler may not advance a resize", plain, policy.ActionResize, rec, queue, prep, tr("resize", active, verifyResize),
		"the reconciler may not take resize from QUEUE_RESIZE to PREP_RESIZE (only start it, or end it in ERROR or back at its origin where it may fail back)"},
	{"reconciler may not finish a stop", plain, policy.ActionStop, rec, stopping, shutoff, tr("stop", active, shutoff),
		"the reconciler may not take stop from STOPPING to SHUTOFF (only start it, or end it in ERROR or back at its origin where it may fail back)"},
	{"reconciler may not start from the wrong status", plain, policy.ActionStart, rec, errorS, starting, tr("start", errorS, active),
		"the reconciler may not take start from ERROR to STARTING (only start it, or end it in ERROR or back at its origin where it may fail back)"},

	// enforcing: only the reconciler may stop an instance the record says
	// is SHUTOFF, or start one it says is ACTIVE; the driver then runs it
	{"reconciler enforces SHUTOFF with stop", plain, policy.ActionStop, rec, shutoff, stopping, tr("stop", shutoff, shutoff), ""},
	{"enforcing stop ends", plain, policy.ActionStop, drv, stopping, shutoff, tr("stop", shutoff, shutoff), ""},
	{"enforcing stop may not end ACTIVE", plain, policy.ActionStop, drv, stopping, active, tr("stop", shutoff, shutoff), "stop may not go from STOPPING to ACTIVE (only to SHUTOFF)"},
	{"reconciler enforces ACTIVE with start", plain, policy.ActionStart, rec, active, starting, tr("start", active, active), ""},
	{"enforcing start ends", plain, policy.ActionStart, drv, starting, active, tr("start", active, active), ""},
	{"enforcing start fails back", plain, policy.ActionStart, rec, starting, active, tr("start", active, active), ""},
	{"user may not stop SHUTOFF", plain, policy.ActionStop, api, shutoff, stopping, tr("stop", shutoff, shutoff), "stop may not start from SHUTOFF (only from ACTIVE, ERROR)"},
	{"user may not start ACTIVE", plain, policy.ActionStart, api, active, starting, tr("start", active, active), "start may not start from ACTIVE (only from SHUTOFF)"},
	{"driver may not start an enforcing stop", plain, policy.ActionStop, drv, shutoff, stopping, tr("stop", shutoff, shutoff), "stop may not start from SHUTOFF (only from ACTIVE, ERROR)"},

	// a change forced by a policy's answer: the same within an action, nothing outside one
	{"policy ends a refused step in ERROR", plain, policy.ActionStart, pol, starting, errorS, tr("start", shutoff, active), ""},
	{"policy ends a refused create in ERROR", plain, policy.ActionCreate, pol, build, errorS, tr("create", "", active), ""},
	{"policy outside an action", plain, "", pol, active, errorS, nil, "the policy may not change ACTIVE to ERROR outside an action"},

	// malformed requests
	{"unknown action", plain, "migrate", api, active, build, nil, `unknown action "migrate" may not change ACTIVE to BUILD`},
	{"transition of another action", plain, policy.ActionStop, api, active, stopping, tr("start", active, active), "stop may not change ACTIVE to STOPPING: the change belongs to a start transition"},
	{"no change", plain, policy.ActionReboot, drv, reboot, reboot, tr("reboot", active, active), "reboot may not go from REBOOT to REBOOT (only to ACTIVE, ERROR)"},
}

func TestCheck(t *testing.T) {
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			got := c.set.check(policy.ValidateRequest{ABI: 1, Action: c.action, Cause: c.cause, From: c.from, To: c.to, Transition: c.t})
			want := policy.Verdict{Allow: c.want == "", Reason: c.want}
			if got != want {
				t.Fatalf("%s %s -> %s: got %+v, want %+v", c.action, c.from, c.to, got, want)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		raw     string
		want    []policy.Action
		wantErr string
	}{
		{raw: `{}`},
		{raw: ``},
		{raw: `{"forbid_actions":["hardReboot","rebuild"]}`, want: []policy.Action{"hardReboot", "rebuild"}},
		{raw: `{"colour":"blue"}`, wantErr: `unknown setting "colour"`},
		{raw: `{"reconciler_may_clear_error":true}`, wantErr: `unknown setting "reconciler_may_clear_error"`},
		{raw: `{"forbid_actions":["migrate"]}`, wantErr: `forbid_actions: unknown action "migrate"`},
		{raw: `{"forbid_actions":"hardReboot"}`, wantErr: `setting "forbid_actions": want []policy.Action, got string`},
	}
	for _, tt := range tests {
		got, err := parseSettings([]byte(tt.raw))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parseSettings(%s) error = %v, want %q", tt.raw, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got.ForbidActions, tt.want) {
			t.Errorf("parseSettings(%s) = %+v, %v; want %v", tt.raw, got, err, tt.want)
		}
	}
}

// TestEveryRowCovered fails when an action of the table, a status it may
// start from, a step or a failure rule has no case in changes.
func TestEveryRowCovered(t *testing.T) {
	type key struct {
		a        policy.Action
		from, to policy.Status
	}
	allowed := map[key]bool{}
	for _, c := range changes {
		if c.want == "" {
			allowed[key{c.action, c.from, c.to}] = true
		}
	}
	for a, p := range plans {
		origins := p.from
		if a == policy.ActionCreate {
			origins = []policy.Status{""}
		}
		if a == policy.ActionDelete {
			origins = []policy.Status{active}
		}
		for _, o := range origins {
			first := p.success(o)[0]
			if len(p.steps) > 0 {
				first = p.steps[0]
			}
			if !allowed[key{a, o, first}] {
				t.Errorf("%s: no allowed case starting from %s", a, show(o))
			}
		}
		for i := 1; i < len(p.steps); i++ {
			if !allowed[key{a, p.steps[i-1], p.steps[i]}] {
				t.Errorf("%s: no allowed case for step %s -> %s", a, p.steps[i-1], p.steps[i])
			}
		}
		for _, st := range p.steps {
			fail := errorS
			if slices.Contains(p.failBack, st) {
				fail = p.from[0]
			}
			if !allowed[key{a, st, fail}] {
				t.Errorf("%s: no allowed case failing from %s to %s", a, st, fail)
			}
		}
	}
}
