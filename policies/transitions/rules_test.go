package main

import (
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

	rebuild, hardReboot = policy.StatusRebuild, policy.StatusHardReboot
	queue, prep, resize = policy.StatusQueueResize, policy.StatusPrepResize, policy.StatusResize
	revert              = policy.StatusRevertResize
	stopping, starting  = policy.StatusStopping, policy.StatusStarting
	reboot              = policy.StatusReboot
)

var changes = []change{
	// create
	{"create starts", settings{}, policy.ActionCreate, api, "", build, tr("create", "", active), ""},
	{"create succeeds", settings{}, policy.ActionCreate, drv, build, active, tr("create", "", active), ""},
	{"create fails", settings{}, policy.ActionCreate, drv, build, errorS, tr("create", "", active), ""},
	{"no SHUTOFF during create", settings{}, policy.ActionCreate, drv, build, shutoff, tr("create", "", active), "create may not show SHUTOFF (from BUILD)"},
	{"create skips BUILD", settings{}, policy.ActionCreate, api, "", active, tr("create", "", active), "create may not go from nothing to ACTIVE (only to BUILD)"},
	{"create without transition", settings{}, policy.ActionCreate, api, "", build, nil, ""},

	// rebuild
	{"rebuild starts", settings{}, policy.ActionRebuild, api, active, rebuild, tr("rebuild", active, active), ""},
	{"rebuild starts from ERROR", settings{}, policy.ActionRebuild, api, errorS, rebuild, tr("rebuild", errorS, active), ""},
	{"rebuild succeeds", settings{}, policy.ActionRebuild, drv, rebuild, active, tr("rebuild", active, active), ""},
	{"rebuild of SHUTOFF ends SHUTOFF", settings{}, policy.ActionRebuild, drv, rebuild, shutoff, tr("rebuild", shutoff, shutoff), ""},
	{"rebuild fails", settings{}, policy.ActionRebuild, drv, rebuild, errorS, tr("rebuild", active, active), ""},
	{"rebuild of SHUTOFF may not end ACTIVE", settings{}, policy.ActionRebuild, drv, rebuild, active, tr("rebuild", shutoff, shutoff), "rebuild may not go from REBUILD to ACTIVE (only to SHUTOFF, ERROR)"},
	{"no BUILD during rebuild", settings{}, policy.ActionRebuild, drv, active, build, tr("rebuild", active, active), "rebuild may not show BUILD (from ACTIVE)"},
	{"no BUILD step declared by rebuild", settings{}, policy.ActionRebuild, drv, active, build,
		&policy.Transition{Action: "rebuild", Steps: []policy.Status{build}, Origin: active, Target: active}, "rebuild may not declare the steps BUILD (it shows REBUILD)"},
	{"rebuild rolls back", settings{}, policy.ActionRebuild, drv, rebuild, shutoff, tr("rebuild", active, active), "rebuild may not go from REBUILD to SHUTOFF (only to ACTIVE, ERROR)"},

	// resize
	{"resize starts", settings{}, policy.ActionResize, api, active, queue, tr("resize", active, verifyResize), ""},
	{"resize preps", settings{}, policy.ActionResize, drv, queue, prep, tr("resize", active, verifyResize), ""},
	{"resize resizes", settings{}, policy.ActionResize, drv, prep, resize, tr("resize", active, verifyResize), ""},
	{"resize succeeds", settings{}, policy.ActionResize, drv, resize, verifyResize, tr("resize", active, verifyResize), ""},
	{"resize rolls back while queued", settings{}, policy.ActionResize, drv, queue, active, tr("resize", active, verifyResize), ""},
	{"resize of SHUTOFF rolls back", settings{}, policy.ActionResize, drv, queue, shutoff, tr("resize", shutoff, verifyResize), ""},
	{"resize fails while queued", settings{}, policy.ActionResize, drv, queue, errorS, tr("resize", active, verifyResize), ""},
	{"resize fails in prep", settings{}, policy.ActionResize, drv, prep, errorS, tr("resize", active, verifyResize), ""},
	{"resize fails late", settings{}, policy.ActionResize, drv, resize, errorS, tr("resize", active, verifyResize), ""},
	{"resize rolls back after a change", settings{}, policy.ActionResize, drv, prep, active, tr("resize", active, verifyResize), "resize may not go from PREP_RESIZE to ACTIVE (only to RESIZE, ERROR)"},
	{"resize skips a step", settings{}, policy.ActionResize, drv, queue, resize, tr("resize", active, verifyResize), "resize may not go from QUEUE_RESIZE to RESIZE (only to PREP_RESIZE, ACTIVE, ERROR)"},
	{"resize goes backwards", settings{}, policy.ActionResize, drv, resize, prep, tr("resize", active, verifyResize), "resize may not go from RESIZE to PREP_RESIZE (only to VERIFY_RESIZE, ERROR)"},
	{"resize from ERROR", settings{}, policy.ActionResize, api, errorS, queue, tr("resize", errorS, verifyResize), "resize may not start from ERROR (only from ACTIVE, SHUTOFF)"},

	// confirmResize and revertResize
	{"confirmResize to ACTIVE", settings{}, policy.ActionConfirmResize, drv, verifyResize, active, tr("confirmResize", verifyResize, active), ""},
	{"confirmResize to SHUTOFF", settings{}, policy.ActionConfirmResize, drv, verifyResize, shutoff, tr("confirmResize", verifyResize, verifyResize), ""},
	{"confirmResize from ACTIVE fails", settings{}, policy.ActionConfirmResize, drv, active, errorS, tr("confirmResize", active, active), "confirmResize may not start from ACTIVE (only from VERIFY_RESIZE)"},
	{"confirmResize fails", settings{}, policy.ActionConfirmResize, drv, verifyResize, errorS, tr("confirmResize", verifyResize, active), ""},
	{"confirmResize from ACTIVE", settings{}, policy.ActionConfirmResize, api, active, shutoff, tr("confirmResize", active, active), "confirmResize may not start from ACTIVE (only from VERIFY_RESIZE)"},
	{"revertResize starts", settings{}, policy.ActionRevertResize, api, verifyResize, revert, tr("revertResize", verifyResize, active), ""},
	{"revertResize ends", settings{}, policy.ActionRevertResize, drv, revert, active, tr("revertResize", verifyResize, active), ""},
	{"revertResize fails", settings{}, policy.ActionRevertResize, drv, revert, errorS, tr("revertResize", verifyResize, active), ""},
	{"revertResize back to VERIFY_RESIZE", settings{}, policy.ActionRevertResize, drv, revert, verifyResize, tr("revertResize", verifyResize, active), "revertResize may not show VERIFY_RESIZE (from REVERT_RESIZE)"},

	// stop and start
	{"stop starts", settings{}, policy.ActionStop, api, active, stopping, tr("stop", active, shutoff), ""},
	{"stop succeeds", settings{}, policy.ActionStop, drv, stopping, shutoff, tr("stop", active, shutoff), ""},
	{"stop rolls back", settings{}, policy.ActionStop, drv, stopping, active, tr("stop", active, shutoff), ""},
	{"stop of ERROR", settings{}, policy.ActionStop, api, errorS, stopping, tr("stop", errorS, shutoff), ""},
	{"stop of ERROR rolls back", settings{}, policy.ActionStop, drv, stopping, errorS, tr("stop", errorS, shutoff), ""},
	{"stop fails to ERROR", settings{}, policy.ActionStop, drv, stopping, errorS, tr("stop", active, shutoff), "stop may not go from STOPPING to ERROR (only to SHUTOFF, ACTIVE)"},
	{"stop of SHUTOFF", settings{}, policy.ActionStop, api, shutoff, stopping, tr("stop", shutoff, shutoff), "stop may not start from SHUTOFF (only from ACTIVE, ERROR)"},
	{"start starts", settings{}, policy.ActionStart, api, shutoff, starting, tr("start", shutoff, active), ""},
	{"start succeeds", settings{}, policy.ActionStart, drv, starting, active, tr("start", shutoff, active), ""},
	{"start rolls back", settings{}, policy.ActionStart, drv, starting, shutoff, tr("start", shutoff, active), ""},
	{"start of ACTIVE", settings{}, policy.ActionStart, api, active, starting, tr("start", active, active), "start may not start from ACTIVE (only from SHUTOFF)"},
	{"start shows BUILD", settings{}, policy.ActionStart, drv, starting, build, tr("start", shutoff, active), "start may not show BUILD (from STARTING)"},

	// reboot
	{"reboot", settings{}, policy.ActionReboot, api, active, reboot, tr("reboot", active, active), ""},
	{"reboot ends", settings{}, policy.ActionReboot, drv, reboot, active, tr("reboot", active, active), ""},
	{"reboot fails", settings{}, policy.ActionReboot, drv, reboot, errorS, tr("reboot", active, active), ""},
	{"reboot of SHUTOFF", settings{}, policy.ActionReboot, api, shutoff, reboot, tr("reboot", shutoff, active), "reboot may not start from SHUTOFF (only from ACTIVE)"},
	{"hard reboot of SHUTOFF", settings{}, policy.ActionHardReboot, api, shutoff, hardReboot, tr("hardReboot", shutoff, active), ""},
	{"hard reboot ends", settings{}, policy.ActionHardReboot, drv, hardReboot, active, tr("hardReboot", shutoff, active), ""},
	{"hard reboot forbidden", settings{ForbidActions: []policy.Action{"hardReboot"}}, policy.ActionHardReboot, api, active, hardReboot, tr("hardReboot", active, active), "hardReboot is forbidden by the operator (forbid_actions)"},
	{"forbidden hard reboot in flight may end", settings{ForbidActions: []policy.Action{"hardReboot"}}, policy.ActionHardReboot, drv, hardReboot, active, tr("hardReboot", active, active), ""},
	{"forbidden confirmResize", settings{ForbidActions: []policy.Action{"confirmResize"}}, policy.ActionConfirmResize, api, verifyResize, active, tr("confirmResize", verifyResize, active), "confirmResize is forbidden by the operator (forbid_actions)"},

	// delete
	{"delete of ACTIVE", settings{}, policy.ActionDelete, api, active, deleting, tr("delete", active, deleted), ""},
	{"delete pre-empts STOPPING", settings{}, policy.ActionDelete, api, stopping, deleting, tr("delete", stopping, deleted), ""},
	{"delete of ERROR", settings{}, policy.ActionDelete, api, errorS, deleting, tr("delete", errorS, deleted), ""},
	{"delete ends", settings{}, policy.ActionDelete, drv, deleting, deleted, tr("delete", active, deleted), ""},
	{"delete fails", settings{}, policy.ActionDelete, drv, deleting, errorS, tr("delete", active, deleted), ""},
	{"no BUILD during delete", settings{}, policy.ActionDelete, drv, deleting, build, tr("delete", active, deleted), "delete may not show BUILD (from DELETING)"},
	{"delete back to ACTIVE", settings{}, policy.ActionDelete, drv, deleting, active, tr("delete", active, deleted), "delete may not show ACTIVE (from DELETING)"},
	{"delete forbidden", settings{ForbidActions: []policy.Action{"delete"}}, policy.ActionDelete, api, active, deleting, tr("delete", active, deleted), "delete is forbidden by the operator (forbid_actions)"},

	// reconciler
	{"reconciler ACTIVE to SHUTOFF", settings{}, "", rec, active, shutoff, nil, ""},
	{"reconciler SHUTOFF to ACTIVE", settings{}, "", rec, shutoff, active, nil, ""},
	{"reconciler to ERROR", settings{}, "", rec, active, errorS, nil, ""},
	{"ERROR not cleared by reconciler", settings{}, "", rec, errorS, active, nil, "the reconciler may not clear ERROR (to ACTIVE) unless reconciler_may_clear_error is set"},
	{"ERROR cleared by reconciler when allowed", settings{ReconcilerMayClearError: true}, "", rec, errorS, shutoff, nil, ""},
	{"reconciler to BUILD", settings{}, "", rec, active, build, nil, "the reconciler may not change ACTIVE to BUILD outside an action"},
	{"reconciler to DELETED", settings{}, "", rec, shutoff, deleted, nil, "the reconciler may not change SHUTOFF to DELETED outside an action"},
	{"reconciler ends an orphan in ERROR", settings{}, policy.ActionRebuild, rec, rebuild, errorS, tr("rebuild", active, active), ""},
	{"reconciler rolls an orphaned stop back", settings{}, policy.ActionStop, rec, stopping, active, tr("stop", active, shutoff), ""},
	{"reconciler may not roll an orphaned rebuild back", settings{}, policy.ActionRebuild, rec, rebuild, shutoff, tr("rebuild", active, active), "rebuild may not go from REBUILD to SHUTOFF (only to ACTIVE, ERROR)"},

	// malformed requests
	{"unknown action", settings{}, "migrate", api, active, build, nil, `unknown action "migrate" may not change ACTIVE to BUILD`},
	{"transition of another action", settings{}, policy.ActionStop, api, active, stopping, tr("start", active, active), "stop may not change ACTIVE to STOPPING: the change belongs to a start transition"},
	{"no change", settings{}, policy.ActionReboot, drv, reboot, reboot, tr("reboot", active, active), "reboot may not go from REBOOT to REBOOT (only to ACTIVE, ERROR)"},
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
		want    settings
		wantErr string
	}{
		{raw: `{}`},
		{raw: ``},
		{raw: `{"reconciler_may_clear_error":true,"forbid_actions":["hardReboot","rebuild"]}`,
			want: settings{ReconcilerMayClearError: true, ForbidActions: []policy.Action{"hardReboot", "rebuild"}}},
		{raw: `{"colour":"blue"}`, wantErr: `unknown setting "colour"`},
		{raw: `{"forbid_actions":["migrate"]}`, wantErr: `forbid_actions: unknown action "migrate"`},
		{raw: `{"reconciler_may_clear_error":"yes"}`, wantErr: `setting "reconciler_may_clear_error": want bool, got string`},
	}
	for _, tt := range tests {
		got, err := parseSettings([]byte(tt.raw))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parseSettings(%s) error = %v, want %q", tt.raw, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.ReconcilerMayClearError != tt.want.ReconcilerMayClearError || len(got.ForbidActions) != len(tt.want.ForbidActions) {
			t.Errorf("parseSettings(%s) = %+v, %v; want %+v", tt.raw, got, err, tt.want)
		}
	}
}
