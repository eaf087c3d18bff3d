//go:build wasip1

// Command benchguest is a benchmark-only policy: besides the SDK's ABI v1
// exports (with a handler that always allows), it exports bench_* hooks
// that each do one part of the SDK's validate path, so BenchmarkGuestParts
// can tell where a Go guest's time goes. Each bench_* export takes a
// buffer from bench_alloc and answers a constant verdict.
package main

import (
	"encoding/json"
	"time"
	"unsafe"

	"github.com/lucid-project/lucid/sdk/policy"
)

func init() {
	policy.SetInfo(policy.Info{Name: "benchguest", Version: "0"})
	policy.HandleValidate(func(policy.ValidateRequest) policy.Verdict { return policy.Allow() })
}

func main() {}

var (
	buffers  = map[uint32][]byte{}
	response []byte
	allow    = []byte(`{"allow":true}`)
	sink     any
)

//go:wasmexport bench_alloc
func benchAlloc(n int32) int32 {
	b := make([]byte, n+1)
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	buffers[p] = b
	return int32(p)
}

func take(ptr, n int32) []byte {
	b := buffers[uint32(ptr)]
	delete(buffers, uint32(ptr))
	return b[:n]
}

func pack(b []byte) int64 {
	response = b
	return int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | int64(len(b))
}

func answer(err error) int64 {
	if err != nil {
		panic(err)
	}
	return pack(allow)
}

// noTime mirrors policy.ValidateRequest with the timestamps as strings.
type noTime struct {
	ABI      int    `json:"abi"`
	Now      string `json:"now"`
	Action   string `json:"action"`
	Cause    string `json:"cause"`
	From     string `json:"from"`
	To       string `json:"to"`
	Instance struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		VMState    string `json:"vm_state"`
		PowerState string `json:"power_state"`
		Flavor     string `json:"flavor"`
		Image      string `json:"image"`
		Node       string `json:"node"`
		Driver     string `json:"driver"`
		CreatedAt  string `json:"created_at"`
		UpdatedAt  string `json:"updated_at"`
		HistorySeq int64  `json:"history_seq"`
	} `json:"instance"`
	Transition *struct {
		Action        string            `json:"action"`
		RequestID     string            `json:"request_id"`
		Steps         []string          `json:"steps"`
		Step          int               `json:"step"`
		Origin        string            `json:"origin"`
		Target        string            `json:"target"`
		StartedAt     string            `json:"started_at"`
		StepStartedAt string            `json:"step_started_at"`
		Attempt       int               `json:"attempt"`
		Node          string            `json:"node"`
		Args          map[string]string `json:"args,omitempty"`
	} `json:"transition"`
}

//go:wasmexport bench_noop
func benchNoop(p, n int32) int64 { take(p, n); return answer(nil) }

//go:wasmexport bench_valid
func benchValid(p, n int32) int64 {
	if !json.Valid(take(p, n)) {
		panic("invalid")
	}
	return answer(nil)
}

//go:wasmexport bench_map
func benchMap(p, n int32) int64 {
	var m map[string]any
	err := json.Unmarshal(take(p, n), &m)
	sink = m
	return answer(err)
}

//go:wasmexport bench_struct
func benchStruct(p, n int32) int64 {
	var q policy.ValidateRequest
	err := json.Unmarshal(take(p, n), &q)
	sink = q.Transition
	return answer(err)
}

//go:wasmexport bench_notime
func benchNoTime(p, n int32) int64 {
	var q noTime
	err := json.Unmarshal(take(p, n), &q)
	sink = q.Transition
	return answer(err)
}

// bench_timeparse parses five timestamps, as many as the request holds.
//
//go:wasmexport bench_timeparse
func benchTimeParse(p, n int32) int64 {
	take(p, n)
	var err error
	var t time.Time
	for range 5 {
		t, err = time.Parse(time.RFC3339Nano, "2025-01-02T03:04:05Z")
	}
	sink = t
	return answer(err)
}

//go:wasmexport bench_marshal
func benchMarshal(p, n int32) int64 {
	take(p, n)
	b, err := json.Marshal(struct {
		policy.Verdict
		Error string `json:"error,omitempty"`
	}{Verdict: policy.Allow()})
	if err != nil {
		panic(err)
	}
	return pack(b)
}

// bench_alloc8k allocates and drops 8 KiB in 64-byte pieces.
//
//go:wasmexport bench_alloc8k
func benchAlloc8k(p, n int32) int64 {
	take(p, n)
	for range 128 {
		sink = make([]byte, 64)
	}
	return answer(nil)
}

//go:noinline
func add(a, b int) int { return a + b }

var counter int

// bench_calls makes 10,000 calls to a function that is not inlined.
//
//go:wasmexport bench_calls
func benchCalls(p, n int32) int64 {
	take(p, n)
	s := 0
	for i := range 10000 {
		s = add(s, i)
	}
	counter = s
	return answer(nil)
}

// bench_loop sums the request's bytes 15 times (~10,000 iterations).
//
//go:wasmexport bench_loop
func benchLoop(p, n int32) int64 {
	b := take(p, n)
	s := 0
	for range 15 {
		for _, c := range b {
			s += int(c)
		}
	}
	counter = s
	return answer(nil)
}
