package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// A validate policy that declares itself deterministic over a list of
// request fields (Info.Reads, Info.Deterministic) gets the same verdict
// for the same values of those fields, so the host keeps its verdicts and
// calls it only for values it has not seen. The default transitions
// policy reads only the action, the cause, the proposed change and the
// transition's shape, so after warm-up almost every status change is
// judged without a call. Failed calls are never kept.

// readable are the request fields a key may be made of.
var readable = []string{"action", "cause", "from", "to", "transition.action", "transition.steps",
	"transition.step", "transition.origin", "transition.target"}

// maxVerdicts bounds a module's kept verdicts; when full, the map is
// dropped and refilled (the keys are few: the edges of the action table).
const maxVerdicts = 4096

// verdicts keeps a deterministic module's verdicts by key.
type verdicts struct {
	reads []string // the fields keyed on, in readable's order
	mu    sync.Mutex
	m     map[string]Verdict
	hits  uint64
}

// newVerdicts returns a verdict store for a module's info, or nil (and why
// not, for the log) when the module does not qualify.
func newVerdicts(info Info) (*verdicts, string) {
	if !info.Deterministic {
		return nil, ""
	}
	if len(info.Reads) == 0 {
		return nil, "the module declares itself deterministic but names no fields it reads"
	}
	for _, f := range info.Reads {
		if !slices.Contains(readable, f) {
			return nil, fmt.Sprintf("the module reads %q, which the host cannot key verdicts on (it knows %s)", f, strings.Join(readable, ", "))
		}
	}
	var reads []string
	for _, f := range readable {
		if slices.Contains(info.Reads, f) {
			reads = append(reads, f)
		}
	}
	return &verdicts{reads: reads, m: map[string]Verdict{}}, ""
}

// key appends the request's key, made of the fields the module reads, to
// b. The key is looked up without being made a string (get), so a hit,
// nearly every change after warm-up, allocates nothing.
func (v *verdicts) key(b []byte, req ValidateRequest) []byte {
	t := req.Transition
	for _, f := range v.reads {
		b = append(b, f...)
		b = append(b, '=')
		switch f {
		case "action":
			b = append(b, req.Action...)
		case "cause":
			b = append(b, req.Cause...)
		case "from":
			b = append(b, req.From...)
		case "to":
			b = append(b, req.To...)
		default:
			if t == nil {
				b = append(b, "<none>"...)
				break
			}
			switch f {
			case "transition.action":
				b = append(b, t.Action...)
			case "transition.steps":
				for _, s := range t.Steps {
					b = append(b, s...)
					b = append(b, ',')
				}
			case "transition.step":
				b = strconv.AppendInt(b, int64(t.Step), 10)
			case "transition.origin":
				b = append(b, t.Origin...)
			case "transition.target":
				b = append(b, t.Target...)
			}
		}
		b = append(b, ';')
	}
	return b
}

func (v *verdicts) get(key []byte) (Verdict, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	verdict, ok := v.m[string(key)]
	if ok {
		v.hits++
	}
	return verdict, ok
}

func (v *verdicts) put(key string, verdict Verdict) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) >= maxVerdicts {
		v.m = map[string]Verdict{}
	}
	v.m[key] = verdict
}

// Hits is how many validate calls the module's kept verdicts answered.
func (m *Module) Hits() uint64 {
	if m.verdicts == nil {
		return 0
	}
	m.verdicts.mu.Lock()
	defer m.verdicts.mu.Unlock()
	return m.verdicts.hits
}
