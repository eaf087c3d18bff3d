package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lucid-project/lucid/sdk/driver"
)

// config is the decoded `config {}` block. The zero value is the default:
// instant operations, no faults, no persistence.
type config struct {
	bootDelay         time.Duration
	destroyDelay      time.Duration
	rebuildDelay      time.Duration
	resizeDelay       time.Duration // each Resize step, and RevertResize
	failSpawn         string        // "" = no fault
	failDestroy       string        // "" = no fault
	failRebuild       string        // "" = no fault
	failResize        []driver.ResizeStep
	failConfirmResize string // "" = no fault
	failRevertResize  string // "" = no fault
	crashOn           string // method name, "" = never
	stateFile         string // "" = memory only
	controlSocket     string // "" = no control API
}

// crashable lists the methods crash_on accepts. Configure is left out: a
// plugin that crashes while being configured would be restarted forever;
// so is Events, which the host reopens after every restart.
var crashable = []string{"Info", "Spawn", "Destroy", "Inspect", "List", "PowerOff", "PowerOn", "Reboot", "Rebuild", "Resize", "ConfirmResize", "RevertResize"}

// resizeSteps are the steps fail_resize names, in order.
var resizeSteps = []driver.ResizeStep{driver.ResizeQueue, driver.ResizePrepare, driver.ResizeFinish}

// parseConfig decodes the JSON object the host passes to Configure. Empty
// input means "all defaults". Every problem is reported, each naming its
// key, and the error wraps driver.ErrInvalidConfig.
func parseConfig(raw []byte) (config, error) {
	var c config
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return c, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return c, fmt.Errorf("%w: not a JSON object: %v", driver.ErrInvalidConfig, err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys) // stable, readable error messages

	var problems []string
	for _, k := range keys {
		v := fields[k]
		var err error
		switch k {
		case "boot_delay":
			c.bootDelay, err = parseDuration(v)
		case "destroy_delay":
			c.destroyDelay, err = parseDuration(v)
		case "rebuild_delay":
			c.rebuildDelay, err = parseDuration(v)
		case "resize_delay":
			c.resizeDelay, err = parseDuration(v)
		case "fail_spawn":
			c.failSpawn, err = parseFault(v, "injected spawn failure")
		case "fail_destroy":
			c.failDestroy, err = parseFault(v, "injected destroy failure")
		case "fail_rebuild":
			c.failRebuild, err = parseFault(v, "injected rebuild failure")
		case "fail_resize":
			c.failResize, err = parseSteps(v)
		case "fail_confirm_resize":
			c.failConfirmResize, err = parseFault(v, "injected confirm resize failure")
		case "fail_revert_resize":
			c.failRevertResize, err = parseFault(v, "injected revert resize failure")
		case "crash_on":
			c.crashOn, err = parseCrashOn(v)
		case "state_file":
			c.stateFile, err = parsePath(v)
		case "control_socket":
			c.controlSocket, err = parsePath(v)
		default:
			err = fmt.Errorf("unknown key")
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", k, err))
		}
	}
	if len(problems) > 0 {
		return config{}, fmt.Errorf("%w: %s", driver.ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return c, nil
}

// parseDuration accepts a Go duration string such as "200ms".
func parseDuration(v json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return 0, fmt.Errorf("want a duration string such as \"200ms\", got %s", v)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// parseFault accepts true (fail with def), false (no fault) or a message.
func parseFault(v json.RawMessage, def string) (string, error) {
	var b bool
	if err := json.Unmarshal(v, &b); err == nil {
		if b {
			return def, nil
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("want true, false or an error message, got %s", v)
	}
	return s, nil
}

func parseCrashOn(v json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("want a method name, got %s", v)
	}
	if s == "" {
		return "", nil
	}
	for _, m := range crashable {
		if strings.EqualFold(s, m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown method %q, want one of %s", s, strings.Join(crashable, ", "))
}

// parseSteps accepts one resize step name or a list of them, e.g.
// "prepare" or ["queue", "finish"]; an empty list means no fault.
func parseSteps(v json.RawMessage) ([]driver.ResizeStep, error) {
	var names []string
	var one string
	if err := json.Unmarshal(v, &one); err == nil {
		names = []string{one}
	} else if err := json.Unmarshal(v, &names); err != nil {
		return nil, fmt.Errorf("want a resize step or a list of them (%s), got %s", stepList(), v)
	}
	var steps []driver.ResizeStep
	for _, n := range names {
		step := driver.ResizeStep(strings.ToLower(n))
		if !slices.Contains(resizeSteps, step) {
			return nil, fmt.Errorf("unknown resize step %q, want %s", n, stepList())
		}
		if !slices.Contains(steps, step) {
			steps = append(steps, step)
		}
	}
	return steps, nil
}

func stepList() string {
	names := make([]string, len(resizeSteps))
	for i, s := range resizeSteps {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// parsePath accepts a file path string ("" means off).
func parsePath(v json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("want a path string, got %s", v)
	}
	return s, nil
}
