// Command lucid-driver-fake is Lucid's simulated hypervisor: a real driver
// plugin that keeps instances in memory (optionally in a JSON state file)
// and injects faults on demand. Operators use it for demos; tests use it to
// exercise the plugin host, restart handling and the lifecycle engine.
//
// Build it with
//
//	go build -o bin/lucid-driver-fake ./plugins/fake
//
// and configure it in HCL (every key optional):
//
//	driver "fake" {
//	  plugin = "bin/lucid-driver-fake"
//	  config {
//	    boot_delay    = "200ms"    # how long Spawn takes (respects cancellation)
//	    destroy_delay = "50ms"     # how long Destroy takes
//	    fail_spawn    = "no host"  # true or a message: Spawn fails (after boot_delay)
//	    fail_destroy  = true       # true or a message: Destroy fails (after destroy_delay)
//	    crash_on      = "Spawn"    # the plugin process exits(2) when this method is called
//	    state_file    = "data/fake.json" # persist instances across plugin restarts
//	  }
//	}
//
// Unknown keys and malformed values are refused with driver.ErrInvalidConfig
// naming the key. See README.md for the fault knobs in detail.
//
// Run by hand it only prints a notice: it must be launched by the host.
package main

import (
	"os"

	"github.com/lucid-project/lucid/sdk/driver"
)

func main() {
	// Keep the real stderr: Serve redirects os.Stderr through gRPC, which
	// would lose a message written just before os.Exit (crash_on).
	driver.Serve(newFake(os.Stderr))
}
