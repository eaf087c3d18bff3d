package throughput

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// components are what lucid serve's CPU is split into, each with the
// function-name prefixes (package paths) that belong to it. Order
// matters only where prefixes nest: Lucid's policy host and plugin host
// are named before the rest of Lucid.
var components = []struct {
	name     string
	prefixes []string
}{
	{"policy (wazero, core/policy)", []string{"github.com/tetratelabs/wazero", "github.com/lucid-project/lucid/core/policy."}},
	{"gRPC/plugin (grpc, go-plugin, core/driver)", []string{"google.golang.org/grpc", "github.com/hashicorp/go-plugin", "github.com/hashicorp/yamux", "github.com/lucid-project/lucid/core/driver."}},
	{"etcd server+client (go.etcd.io)", []string{"go.etcd.io/"}},
	{"JSON (encoding/json)", []string{"encoding/json."}},
	{"logging (log/slog)", []string{"log/slog."}},
	{"HTTP server (net/http)", []string{"net/http.", "net/textproto.", "net/url."}},
	{"Lucid (api, lifecycle, executor, store, ...)", []string{"github.com/lucid-project/lucid/"}},
}

const (
	gcRuntime = "GC/runtime"
	other     = "other"
)

// attributionRule is printed in the report's header.
const attributionRule = "each CPU sample goes to the first component found walking its stack from the leaf " +
	"(so allocation and GC assists count to the component that allocated, and a component's calls into the " +
	"standard library count to it); a stack with no component frame is GC/runtime when it starts in the " +
	"runtime (GC workers, scheduler), else other"

// share is one component's part of the sampled CPU.
type share struct {
	name  string
	share float64
}

// componentShares reads a CPU profile and returns each component's share
// of its sampled CPU time, largest first, and the time sampled. Every
// component is listed, also at zero share.
func componentShares(path string) ([]share, time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("throughput: the server's CPU profile: %w", err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, 0, fmt.Errorf("throughput: the server's CPU profile %s: %w", path, err)
	}
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			vi = i
		}
	}
	if vi < 0 {
		return nil, 0, fmt.Errorf("throughput: %s is not a CPU profile (no cpu/nanoseconds sample type)", path)
	}
	by := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		by[attribute(s.Location)] += v
		total += v
	}
	if total == 0 {
		return nil, 0, fmt.Errorf("throughput: the server's CPU profile %s has no samples", path)
	}
	var out []share
	for _, c := range components {
		out = append(out, share{c.name, float64(by[c.name]) / float64(total)})
	}
	out = append(out, share{gcRuntime, float64(by[gcRuntime]) / float64(total)}, share{other, float64(by[other]) / float64(total)})
	sort.SliceStable(out, func(i, j int) bool { return out[i].share > out[j].share })
	return out, time.Duration(total), nil
}

// attribute names the component of one sample's stack (leaf first; a
// location's lines are innermost first) by attributionRule.
func attribute(stack []*profile.Location) string {
	root := ""
	for _, loc := range stack {
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			name := ln.Function.Name
			root = name
			for _, c := range components {
				for _, p := range c.prefixes {
					if strings.HasPrefix(name, p) {
						return c.name
					}
				}
			}
		}
	}
	if strings.HasPrefix(root, "runtime.") {
		return gcRuntime
	}
	return other
}
