package instance

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRecords feeds arbitrary bytes to the record decoders, as a
// damaged or hostile etcd value would reach them. They must never panic,
// and what they accept must survive a round trip (encode, decode again,
// same value).
func FuzzDecodeRecords(f *testing.F) {
	for _, seed := range []string{
		`{"schema":2,"id":"a","name":"web","vm_state":"active","power_state":"running","flavor":{"id":"m1.small","vcpus":1,"ram_mb":2048,"disk_gb":20},"image":{"id":"cirros","source":"fake://cirros"},"node":"n","driver":"fake","history_seq":3}`,
		`{"id":"a","vm_state":"active","flavor":"m1.small","image":"cirros"}`,
		`{"schema":2,"action":"resize","steps":["QUEUE_RESIZE","PREP_RESIZE","RESIZE"],"step":1,"origin":"ACTIVE","target":"VERIFY_RESIZE","node":"n","flavor":{"id":"m1.medium"}}`,
		`{"schema":1,"seq":4,"from":"BUILD","to":"ACTIVE","action":"create","cause":"driver"}`,
		`{"schema":99}`, `null`, `[]`, `{"flavor":7}`, `{"flags":[{"kind":"x"}],"metadata":{"k":"v"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := DecodeState(b); err == nil {
			again, err := DecodeState(mustJSON(t, st))
			if err != nil || string(mustJSON(t, again)) != string(mustJSON(t, st)) {
				t.Fatalf("state does not round-trip: %s -> %s (%v)", mustJSON(t, st), mustJSON(t, again), err)
			}
		}
		if tr, err := DecodeTransition(b); err == nil {
			_ = tr.Current() // any step index must be safe
			if _, err := DecodeTransition(mustJSON(t, tr)); err != nil {
				t.Fatalf("transition does not round-trip: %v", err)
			}
		}
		if h, err := DecodeHistory(b); err == nil {
			if _, err := DecodeHistory(mustJSON(t, h)); err != nil {
				t.Fatalf("history record does not round-trip: %v", err)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
