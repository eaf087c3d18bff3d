//go:build wasip1

// Command sdkguest is a test policy built with sdk/policy, as a policy
// author would write one. Its behaviour is chosen by the instance name in
// the request:
//
//   - "" or anything unlisted: allow (the trivial policy)
//   - "garbage N": allocate N bytes and drop them
//   - "leak": keep 64 KiB more alive with every call, forever
//   - "flood": write lines to stdout and stderr until the call is killed
//   - "flood N": write N lines to stdout
//   - "memstats": deny, with the reason "numgc=G heap=H": the number of
//     completed garbage collections and the bytes allocated on the heap
//
// Its one setting, "gc_percent", sets the collector's GOGC: a low value
// makes collections frequent.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/lucid-project/lucid/sdk/policy"
)

// hoard is what "leak" keeps alive; sink is where "garbage" drops what it
// allocates.
var (
	hoard [][]byte
	sink  []byte
)

func init() {
	policy.SetInfo(policy.Info{Name: "sdkguest", Version: "0.0.1"})
	policy.HandleInit(func(raw []byte) error {
		var s struct {
			GCPercent *int `json:"gc_percent"`
		}
		if err := policy.DecodeSettings(raw, &s); err != nil {
			return err
		}
		if s.GCPercent != nil {
			debug.SetGCPercent(*s.GCPercent)
		}
		return nil
	})
	policy.HandleValidate(func(req policy.ValidateRequest) policy.Verdict {
		name := req.Instance.Name
		verb, arg, _ := strings.Cut(name, " ")
		n := 0
		if arg != "" {
			var err error
			if n, err = strconv.Atoi(arg); err != nil {
				panic(err)
			}
		}
		switch {
		case verb == "garbage":
			sink = make([]byte, n)
		case verb == "leak":
			hoard = append(hoard, make([]byte, 64<<10))
		case name == "flood":
			for i := 0; ; i++ {
				fmt.Printf("flood line %d\n", i)
				fmt.Fprintf(os.Stderr, "flood error %d\n", i)
			}
		case verb == "flood":
			for i := range n {
				fmt.Printf("flood line %d\n", i)
			}
		case verb == "memstats":
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return policy.Deny(fmt.Sprintf("numgc=%d heap=%d", ms.NumGC, ms.HeapAlloc))
		}
		return policy.Allow()
	})
}

func main() {}
