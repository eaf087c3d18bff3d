//go:build wasip1

// Command rawguest is a test policy that speaks ABI v1 by hand, without
// sdk/policy, so the host tests can make it misbehave in every way a
// foreign module could: trap, loop, exhaust memory, answer garbage. The
// behaviour is chosen by the instance name in the request.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"unsafe"
)

var (
	buffers  = map[uint32][]byte{}
	response []byte
	hoard    [][]byte
	settings struct {
		Reject string `json:"reject"`
	}
)

//go:wasmexport lucid_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport lucid_alloc
func alloc(n int32) int32 {
	b := make([]byte, n+1)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	buffers[p] = b
	return int32(p)
}

func take(p, n int32) []byte {
	b := buffers[uint32(p)]
	delete(buffers, uint32(p))
	return b[:n]
}

func pack(b []byte) int64 {
	response = b
	return int64(uintptr(unsafe.Pointer(&b[0])))<<32 | int64(len(b))
}

//go:wasmexport lucid_policy_info
func info() int64 {
	return pack([]byte(`{"name":"rawguest","version":"0.0.1","hooks":["validate","reconcile"],"settings_schema":{"type":"object"},"extra":1}`))
}

//go:wasmexport lucid_init
func initSettings(p, n int32) int64 {
	if err := json.Unmarshal(take(p, n), &settings); err != nil {
		return pack([]byte(fmt.Sprintf(`{"ok":false,"error":%q}`, err.Error())))
	}
	if settings.Reject != "" {
		return pack([]byte(fmt.Sprintf(`{"ok":false,"error":%q}`, settings.Reject)))
	}
	return pack([]byte(`{"ok":true}`))
}

type request struct {
	Now      string `json:"now"`
	Instance struct {
		Name string `json:"name"`
	} `json:"instance"`
}

func misbehave(name string) []byte {
	switch name {
	case "panic":
		panic("boom")
	case "loop":
		for {
		}
	case "oom":
		// In 4 MiB steps: dying of memory should take few allocations and
		// garbage collections, so that it comes well before any timeout.
		for {
			hoard = append(hoard, make([]byte, 4<<20))
		}
	case "badjson":
		return []byte(`{not json`)
	case "badptr":
		response = nil
		return nil
	case "print":
		fmt.Println("hello on stdout")
		fmt.Fprintln(os.Stderr, "hello on stderr")
	case "exit":
		os.Exit(3)
	}
	return []byte{}
}

//go:wasmexport lucid_validate
func validate(p, n int32) int64 {
	var req request
	if err := json.Unmarshal(take(p, n), &req); err != nil {
		return pack([]byte(fmt.Sprintf(`{"allow":false,"error":%q}`, err.Error())))
	}
	if b := misbehave(req.Instance.Name); b == nil {
		return 0x7fff0000<<32 | 16
	} else if len(b) > 0 {
		return pack(b)
	}
	switch req.Instance.Name {
	case "deny":
		return pack([]byte(`{"allow":false,"reason":"no","future":true}`))
	case "noallow":
		return pack([]byte(`{"reason":"forgot"}`))
	case "guesterr":
		return pack([]byte(`{"allow":true,"error":"could not decide"}`))
	case "now":
		return pack([]byte(fmt.Sprintf(`{"allow":true,"reason":%q}`, req.Now)))
	}
	return pack([]byte(`{"allow":true,"reason":"ok"}`))
}

//go:wasmexport lucid_reconcile
func reconcile(p, n int32) int64 {
	var req request
	_ = json.Unmarshal(take(p, n), &req)
	if b := misbehave(req.Instance.Name); b == nil {
		return 0x7fff0000<<32 | 16
	} else if len(b) > 0 {
		return pack(b)
	}
	switch req.Instance.Name {
	case "nostatus":
		return pack([]byte(`{"decision":"correct"}`))
	case "bogus":
		return pack([]byte(`{"decision":"shrug"}`))
	}
	return pack([]byte(`{"decision":"correct","status":"SHUTOFF","reason":"hypervisor says off"}`))
}

func main() {}
