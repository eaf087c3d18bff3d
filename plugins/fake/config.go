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
	bootDelay    time.Duration
	destroyDelay time.Duration
	failSpawn    string // "" = no fault
	failDestroy  string // "" = no fault
	crashOn      string // method name, "" = never
	stateFile    string // "" = memory only
}

// crashable lists the methods crash_on accepts. Configure is left out: a
// plugin that crashes while being configured would be restarted forever.
var crashable = []string{"Info", "Spawn", "Destroy", "Inspect", "List", "PowerOff", "PowerOn", "Reboot"}

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
		case "fail_spawn":
			c.failSpawn, err = parseFault(v, "injected spawn failure")
		case "fail_destroy":
			c.failDestroy, err = parseFault(v, "injected destroy failure")
		case "crash_on":
			c.crashOn, err = parseCrashOn(v)
		case "state_file":
			err = json.Unmarshal(v, &c.stateFile)
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
