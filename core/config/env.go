package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// validateEnv decodes a driver's env map and checks it and pass_env: each
// name a plain environment variable name, each value a string without a
// NUL byte, no name twice. Which names the plugin protocol reserves is
// the driver host's business (core/driver refuses them at start).
func (d *Driver) validateEnv() hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]hcl.Range{}
	if d.EnvExpr != nil && d.EnvExpr.Range().Start != d.EnvExpr.Range().End {
		d.EnvRange = d.EnvExpr.Range()
		pairs, ds := hcl.ExprMap(d.EnvExpr)
		if ds.HasErrors() {
			return append(diags, errAt(d.EnvRange, "Invalid env", "env must be a map of variable names to strings, e.g. { LIBVIRT_DEFAULT_URI = \"qemu:///system\" }."))
		}
		d.Env = map[string]string{}
		for _, kv := range pairs {
			rng := hcl.RangeBetween(kv.Key.Range(), kv.Value.Range())
			// A bare key (FOO = ...) is a variable reference to HCL;
			// take its name as written.
			name := hcl.ExprAsKeyword(kv.Key)
			if name == "" {
				k, ds := kv.Key.Value(nil)
				if ds.HasErrors() || k.IsNull() || !k.IsKnown() || k.Type() != cty.String {
					diags = append(diags, errAt(kv.Key.Range(), "Invalid env name", "An env key must be a variable name such as LIBVIRT_DEFAULT_URI."))
					continue
				}
				name = k.AsString()
			}
			if msg := badEnvName(name); msg != "" {
				diags = append(diags, errAt(rng, "Invalid env name", fmt.Sprintf("%q %s.", name, msg)))
				continue
			}
			if prev, dup := seen[name]; dup {
				diags = append(diags, errAt(rng, "Duplicate env variable", fmt.Sprintf("%s is already set at %s.", name, pos(prev))))
				continue
			}
			seen[name] = rng
			v, ds := kv.Value.Value(nil)
			if !ds.HasErrors() && !v.IsNull() {
				v, _ = convert.Convert(v, cty.String)
			}
			if ds.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
				diags = append(diags, errAt(rng, "Invalid env value", fmt.Sprintf("%s: a value is a string.", name)))
				continue
			}
			if strings.ContainsRune(v.AsString(), 0) {
				diags = append(diags, errAt(rng, "Invalid env value", fmt.Sprintf("%s: a value may not contain a NUL byte.", name)))
				continue
			}
			d.Env[name] = v.AsString()
		}
	}
	for _, name := range d.PassEnv {
		if msg := badEnvName(name); msg != "" {
			diags = append(diags, errAt(d.PassEnvRange, "Invalid pass_env name", fmt.Sprintf("%q %s.", name, msg)))
			continue
		}
		if prev, dup := seen[name]; dup {
			diags = append(diags, errAt(d.PassEnvRange, "Duplicate env variable", fmt.Sprintf("%s is already set at %s; pass it or set it, not both.", name, pos(prev))))
			continue
		}
		seen[name] = d.PassEnvRange
	}
	return diags
}

// badEnvName says what is wrong with an environment variable name (a
// letter or '_', then letters, digits and '_'), or "".
func badEnvName(name string) string {
	if name == "" {
		return "is empty"
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return "is not a variable name (a letter or '_', then letters, digits and '_')"
		}
	}
	return ""
}
