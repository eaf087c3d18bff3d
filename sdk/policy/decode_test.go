package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// realistic is a validate request as the host writes it.
const realistic = `{"abi":1,"now":"2025-01-02T03:04:05Z","action":"resize","cause":"driver","from":"QUEUE_RESIZE","to":"PREP_RESIZE",` +
	`"instance":{"id":"5d1c3b1e-0d7e-4d8e-9a53-2a4f1f0c9e11","name":"web-1","vm_state":"active","power_state":"running",` +
	`"flavor":{"id":"m1.small","name":"m1.small","vcpus":1,"ram_mb":2048,"disk_gb":20},"image":{"id":"debian-12","name":"debian-12","source":"fake://debian-12","disk_format":"raw"},` +
	`"project":"p1","user":"u1","metadata":{"role":"web"},"node":"node-1","driver":"","created_at":"2025-01-02T03:04:05Z","updated_at":"2025-01-02T03:04:05.123456789Z","history_seq":12},` +
	`"transition":{"action":"resize","request_id":"req-7f3a","steps":["QUEUE_RESIZE","PREP_RESIZE","RESIZE"],"step":0,"origin":"ACTIVE",` +
	`"target":"VERIFY_RESIZE","started_at":"2025-01-02T03:04:05Z","step_started_at":"2025-01-02T03:04:05.5Z","attempt":1,"node":"node-1","flavor":{"id":"m1.large","vcpus":4,"ram_mb":8192,"disk_gb":80}}}`

// withFaults adds the optional parts of an instance.
const withFaults = `{"abi":1,"now":"2024-02-29T23:59:59.999999999Z","instance":{"id":"i","fault":{"code":500,"message":"boom \"quoted\"","at":"2024-02-29T00:00:00Z","during":"stop"},` +
	`"flags":[{"kind":"power","message":"off","since":"2024-01-01T00:00:00Z"},null,{}]},"transition":null,"observed":{"present":true,"power_state":"shutdown","id":"vm-1"},"disagreeing_ms":-42,"lost_node":"n-1","can_adopt":true}`

// reconcileOrphan is a reconcile request as the host writes it.
const reconcileOrphan = `{"abi":1,"now":"2025-01-02T03:04:05Z","case":"orphan","node":"node-2","instance":{"schema":2,"id":"i","name":"web-1","vm_state":"active",` +
	`"power_state":"running","flavor":{"id":"m1.small","vcpus":1,"ram_mb":2048,"disk_gb":20},"image":{"id":"debian-12"},"node":"node-1","driver":"fake",` +
	`"created_at":"2025-01-02T03:04:05Z","updated_at":"2025-01-02T03:04:05Z","history_seq":3},"transition":{"schema":2,"action":"stop","request_id":"r",` +
	`"steps":["STOPPING"],"step":0,"origin":"ACTIVE","target":"SHUTOFF","started_at":"2025-01-02T03:04:05Z","step_started_at":"2025-01-02T03:04:05Z","attempt":1,"node":"node-1"},` +
	`"status":"STOPPING","observed":{"present":true,"power_state":"running","id":"vm-1"},"disagreeing_ms":3000,"lost_node":"node-1","can_adopt":true}`

// reconcileUnmanaged has no instance and no status.
const reconcileUnmanaged = `{"abi":1,"now":"2025-01-02T03:04:05Z","case":"unmanaged","node":"node-2","instance":null,"transition":null,` +
	`"status":"","observed":{"present":true,"power_state":"running","id":"vm-9"},"disagreeing_ms":0,"lost_node":"","can_adopt":false}`

// decodeCases are requests whose decoding must match encoding/json's, fast
// (fast: true) or through the fallback.
var decodeCases = []struct {
	name, in string
	fast     bool
}{
	{"realistic", realistic, true},
	{"faults", withFaults, true},
	{"reconcile orphan", reconcileOrphan, true},
	{"reconcile unmanaged", reconcileUnmanaged, true},
	{"empty object", `{}`, true},
	{"null", `null`, true},
	{"whitespace", " \n\t{ \"abi\" : 1 ,\r\n \"to\" :\"BUILD\" } \n", true},
	{"other order", `{"to":"BUILD","abi":1,"instance":{"name":"n","id":"i"}}`, true},
	{"unknown fields", `{"abi":1,"future":{"a":[1,2.5e-3,{"b":null}],"c":"\u00e9\n"},"instance":{"x":true,"id":"i","y":[]},"z":-0.0}`, true},
	{"nulls", `{"abi":null,"now":null,"action":null,"from":null,"instance":null,"transition":{"steps":[null,"BUILD"],"flavor":null,"image":null,"started_at":null}}`, true},
	{"null transition", `{"transition":null}`, true},
	{"empty collections", `{"transition":{"steps":[]},"instance":{"flags":[],"metadata":{}}}`, true},
	{"escapes", `{"cause":"a\"b\\c\/d\b\f\n\r\t","instance":{"name":"\u003cweb\u003e \u00e9 \ud83d\ude00"}}`, true},
	{"unicode", `{"instance":{"name":"wéb-1 — 日本 😀"}}`, true},
	{"bad surrogates", `{"instance":{"name":"\ud800 \udc00x \ud800\u0041 \ud83d"}}`, true},
	{"invalid utf8", "{\"instance\":{\"name\":\"a\xffb\xc3\"}}", true},
	{"nul escape", `{"instance":{"name":"\u0000"}}`, true},
	{"map keys", `{"instance":{"metadata":{"":"e","\u00e9":"x","a":"1","a":"2"}}}`, true},
	{"long strings", `{"instance":{"name":"` + strings.Repeat("abcdefgh", 20) + `","image":{"id":"` + strings.Repeat("x", 17) + `\n"}}}`, true},
	{"numbers", `{"abi":-9223372036854775808,"instance":{"history_seq":9223372036854775807},"transition":{"step":0,"attempt":-0}}`, true},
	{"time with offset", `{"now":"2025-01-02T03:04:05+02:00"}`, true},
	{"time lower z", `{"now":"2025-01-02t03:04:05z"}`, false},
	{"time long fraction", `{"now":"2025-01-02T03:04:05.1234567891Z"}`, true},
	{"time comma", `{"now":"2025-01-02T03:04:05,5Z"}`, true}, // left to time, which takes it
	{"time feb 29", `{"now":"2023-02-29T00:00:00Z"}`, false},
	{"time escaped", `{"now":"2025-01-02T03:04:05\u005a"}`, false},
	{"time number", `{"now":5}`, false},
	{"time year 0", `{"now":"0000-01-01T00:00:00Z"}`, true},
	{"time year 9999", `{"now":"9999-12-31T23:59:59.999999999Z"}`, true},

	// encoding/json would decode these differently or fail: the fast path
	// must give up.
	{"repeated key", `{"to":"A","to":"B"}`, false},
	{"repeated object", `{"instance":{"id":"a"},"instance":{"name":"b"}}`, false},
	{"case folded key", `{"TO":"BUILD"}`, false},
	{"kelvin key", `{"instance":{"\u212aind":1}}`, false},
	{"escaped key", `{"t\u006f":"BUILD"}`, false},
	{"float into int", `{"abi":1.0}`, false},
	{"exponent into int", `{"abi":1e2}`, false},
	{"overflow", `{"abi":9223372036854775808}`, false},
	{"string into int", `{"abi":"1"}`, false},
	{"number into string", `{"to":1}`, false},
	{"bool into string", `{"to":true}`, false},
	{"object into string", `{"to":{}}`, false},
	{"array into object", `{"instance":[]}`, false},
	{"string into bool", `{"can_adopt":"yes","to":1}`, false},
	{"number into case", `{"case":1,"to":1}`, false},
	{"string into instance", `{"instance":"i","to":1}`, false},
	{"number into steps", `{"transition":{"steps":[1]}}`, false},
	{"number into metadata", `{"instance":{"metadata":{"a":1}}}`, false},
	{"string into flavor", `{"instance":{"flavor":"m1.small"}}`, false},
	{"top-level array", `[]`, false},
	{"empty", ``, false},
	{"truncated", `{"abi":1`, false},
	{"trailing comma", `{"abi":1,}`, false},
	{"trailing data", `{} {}`, false},
	{"leading zero", `{"abi":01}`, false},
	{"bad escape", `{"to":"\x"}`, false},
	{"control char", "{\"to\":\"a\tb\"}", false},
	{"bad unknown value", `{"x":[1,]}`, false},
	{"bad unknown number", `{"x":-}`, false},
	{"bad literal", `{"orphan":tru}`, false},
	{"deep unknown", `{"x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, false},
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, tt := range decodeCases {
		for _, kind := range []string{"validate", "reconcile"} {
			fast := checkDecode(t, kind, []byte(tt.in))
			if kind == "validate" && fast != tt.fast {
				t.Errorf("%s: fast path taken = %v, want %v", tt.name, fast, tt.fast)
			}
			if kind == "reconcile" && strings.HasPrefix(tt.name, "reconcile ") && !fast {
				t.Errorf("%s: the fast path gave up on a reconcile request as the host writes it", tt.name)
			}
		}
	}
}

// checkDecode compares unmarshalRequest and the fast decoder with
// encoding/json on in, and reports whether the fast path took it.
func checkDecode(t *testing.T, kind string, in []byte) (fast bool) {
	t.Helper()
	newReq := func() any {
		if kind == "validate" {
			return new(ValidateRequest)
		}
		return new(ReconcileRequest)
	}
	want, got, quick := newReq(), newReq(), newReq()
	wantErr := json.Unmarshal(in, want)
	gotErr := unmarshalRequest([]byte(string(in)), got)
	if (wantErr == nil) != (gotErr == nil) || wantErr != nil && wantErr.Error() != gotErr.Error() {
		t.Fatalf("%s %q: error %v, encoding/json says %v", kind, in, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %q:\n got %+v\nwant %+v", kind, in, got, want)
	}
	fast = decodeFast([]byte(string(in)), quick)
	if fast {
		if wantErr != nil {
			t.Fatalf("%s %q: fast path accepted what encoding/json refuses: %v", kind, in, wantErr)
		}
		if !reflect.DeepEqual(quick, want) {
			t.Fatalf("%s %q: fast path:\n got %+v\nwant %+v", kind, in, quick, want)
		}
	}
	return fast
}

func FuzzDecode(f *testing.F) {
	for _, tt := range decodeCases {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkDecode(t, "validate", []byte(in))
		checkDecode(t, "reconcile", []byte(in))
	})
}

func TestParseUTC(t *testing.T) {
	for _, s := range []string{
		"2025-01-02T03:04:05Z", "2025-01-02T03:04:05.1Z", "2025-01-02T03:04:05.123456789Z", "1970-01-01T00:00:00Z",
		"1969-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z", "0000-03-01T00:00:00Z", "0001-02-28T12:00:00Z", "1600-02-29T00:00:00Z",
		"2000-02-29T00:00:00Z", "2100-02-28T00:00:00Z", "2262-04-11T23:47:16.854775807Z", "9999-12-31T23:59:59Z",
	} {
		got, ok := parseUTC(s)
		var want time.Time
		if err := want.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil || !ok || got != want {
			t.Errorf("parseUTC(%s) = %v, %v; time says %v, %v", s, got, ok, want, err)
		}
	}
	for _, s := range []string{
		"2100-02-29T00:00:00Z", "2025-13-01T00:00:00Z", "2025-00-01T00:00:00Z", "2025-01-00T00:00:00Z", "2025-04-31T00:00:00Z",
		"2025-01-01T24:00:00Z", "2025-01-01T00:60:00Z", "2025-01-01T00:00:60Z", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00.1234567890Z",
		"2025-01-01T00:00:00+00:00", "2025-01-01 00:00:00Z", "+025-01-01T00:00:00Z", "2025-1-01T00:00:00Z", "2025-01-01T00:00:0aZ",
		"2025-01-01T00:00:00.1a2Z", "2025-01-01T00:00:00",
	} {
		if got, ok := parseUTC(s); ok {
			t.Errorf("parseUTC(%s) = %v, want it left to time", s, got)
		}
	}
}

func FuzzParseUTC(f *testing.F) {
	f.Add("2025-01-02T03:04:05.123Z")
	f.Add("2024-02-29T23:59:59Z")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseUTC(s)
		if !ok {
			return
		}
		var want time.Time
		if err := want.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil || got != want {
			t.Fatalf("parseUTC(%q) = %v; time says %v, %v", s, got, want, err)
		}
	})
}

func TestScan(t *testing.T) {
	for _, s := range []string{"", "a", "abcdefg\"", "abcdefgh\"", "abcdefghijklmnop\\", "\x1f", "abc\x80", strings.Repeat("z", 30) + "\"x"} {
		want := strings.IndexFunc(s, func(r rune) bool { return r == '"' || r == '\\' || r < 0x20 || r >= 0x80 })
		if want < 0 {
			want = len(s)
		}
		if got := scan([]byte(s), 0); got != want {
			t.Errorf("scan(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestMarshalResponses(t *testing.T) {
	for _, s := range []string{"", "plain reason", `quote "x"`, `back\slash`, "<tag> & more", "tab\there", "é", "\u2028", "a\xffb", "\x00"} {
		for _, v := range []verdictResponse{{Verdict: Allow()}, {Verdict: Deny(s)}, {Verdict: Deny("x"), Error: s}} {
			want, _ := json.Marshal(v)
			if got := marshalVerdict(v); string(got) != string(want) {
				t.Errorf("marshalVerdict(%+v) = %s, want %s", v, got, want)
			}
		}
		for _, v := range []decisionResponse{
			{Decision: Decision{Decision: DecisionKind(s)}},
			{Decision: Decision{Decision: DecisionCorrect, Status: Status(s), Reason: s}},
			{Decision: Decision{Decision: DecisionFlag, Reason: "policy failed"}, Error: s},
		} {
			want, _ := json.Marshal(v)
			if got := marshalDecision(v); string(got) != string(want) {
				t.Errorf("marshalDecision(%+v) = %s, want %s", v, got, want)
			}
		}
	}
}
