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
//	    state_file    = "data/fake.journal" # persist instances across plugin restarts
//	    control_socket = "data/fake.sock"   # serve the control API for `ctl`
//	    # and rebuild_delay, resize_delay, fail_rebuild, fail_resize,
//	    # fail_confirm_resize, fail_revert_resize: see README.md
//	  }
//	}
//
// Unknown keys and malformed values are refused with driver.ErrInvalidConfig
// naming the key. See README.md for the fault knobs in detail.
//
// Run by hand it only prints a notice: it must be launched by the host.
// The one exception is
//
//	lucid-driver-fake ctl --socket PATH list|power|vanish|add ...
//
// which changes VMs behind Lucid's back through the control API (see
// ctl.go and README.md).
package main

import (
	"os"

	"github.com/lucid-project/lucid/sdk/driver"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ctl" {
		os.Exit(runCtl(os.Args[2:], os.Stdout, os.Stderr))
	}
	// Keep the real stderr: Serve redirects os.Stderr through gRPC, which
	// would lose a message written just before os.Exit (crash_on).
	driver.Serve(newFake(os.Stderr))
}
