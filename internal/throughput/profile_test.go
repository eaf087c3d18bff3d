package throughput

import (
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// stack builds a profile stack from function names, leaf first; names
// in one inner slice are one location's lines (inlined, innermost first).
func stack(frames ...[]string) []*profile.Location {
	var out []*profile.Location
	for _, lines := range frames {
		loc := &profile.Location{}
		for _, n := range lines {
			loc.Line = append(loc.Line, profile.Line{Function: &profile.Function{Name: n}})
		}
		out = append(out, loc)
	}
	return out
}

func TestAttribute(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stack []*profile.Location
		want  string
	}{
		{"allocation counts to who allocated",
			stack([]string{"runtime.mallocgc"}, []string{"encoding/json.Marshal"}, []string{"github.com/lucid-project/lucid/core/api.(*Server).showServer"}, []string{"net/http.(*conn).serve"}),
			"JSON (encoding/json)"},
		{"wasm under the lifecycle under a handler is policy",
			stack([]string{"github.com/tetratelabs/wazero/internal/engine/wazevo.(*callEngine).Call"}, []string{"github.com/lucid-project/lucid/core/policy.(*Validator).Validate"}, []string{"github.com/lucid-project/lucid/core/lifecycle.(*Writer).Commit"}, []string{"net/http.(*conn).serve"}),
			"policy (wazero, core/policy)"},
		{"an inlined line is seen before its caller",
			stack([]string{"go.etcd.io/etcd/client/v3.(*txn).Commit", "github.com/lucid-project/lucid/core/store.(*Store).Commit"}),
			"etcd server+client (go.etcd.io)"},
		{"the plugin host is gRPC/plugin, not Lucid",
			stack([]string{"syscall.Syscall"}, []string{"github.com/lucid-project/lucid/core/driver.(*client).Spawn"}, []string{"github.com/lucid-project/lucid/core/executor.(*Executor).run"}),
			"gRPC/plugin (grpc, go-plugin, core/driver)"},
		{"Lucid's own code", stack([]string{"strings.Cut"}, []string{"github.com/lucid-project/lucid/core/store.(*Store).decode"}), "Lucid (api, lifecycle, executor, store, ...)"},
		{"request parsing", stack([]string{"bufio.(*Reader).ReadLine"}, []string{"net/textproto.(*Reader).ReadMIMEHeader"}, []string{"net/http.readRequest"}), "HTTP server (net/http)"},
		{"GC worker", stack([]string{"runtime.scanobject"}, []string{"runtime.gcDrain"}, []string{"runtime.gcBgMarkWorker"}), "GC/runtime"},
		{"no component, not the runtime", stack([]string{"runtime.memmove"}, []string{"bytes.(*Buffer).Write"}, []string{"main.main"}), "other"},
		{"empty", nil, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := attribute(tc.stack); got != tc.want {
				t.Errorf("attribute = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6} // 1..10, shuffled
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, 5}, {99, 10}, {10, 1}, {11, 2}, {100, 10}, {1, 1}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%d = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}
