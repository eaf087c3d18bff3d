//go:build linux

package driver

import (
	"os/exec"
	"runtime"
	"syscall"
)

// forker starts a Plugin's processes with a parent-death signal
// (Pdeathsig = SIGKILL), so that when the host dies, even by SIGKILL, the
// kernel kills its plugins at once instead of leaving them to run beside
// the next host's (seen: a plugin outliving its host by 17 minutes).
//
// The signal fires when the *thread* that forked the child exits, not the
// process (prctl(2) PR_SET_PDEATHSIG; golang/go#27505). Go exits a thread
// whenever a goroutine returns while locked to it (runtime.LockOSThread),
// which any library may do, so a child forked from an ordinary goroutine
// can be killed at a random moment while the host lives on. Every fork
// therefore runs on one goroutine that locks its thread for the forker's
// whole life: no other goroutine ever runs on that thread, so it lives
// until close, which is called only after the Plugin's last process was
// killed. run returns still locked, so the runtime ends the thread too.
type forker struct {
	reqs chan forkRequest
	done chan struct{}
}

type forkRequest struct {
	cmd  *exec.Cmd
	errc chan<- error
}

func newForker() *forker {
	f := &forker{reqs: make(chan forkRequest), done: make(chan struct{})}
	go f.run()
	return f
}

func (f *forker) run() {
	runtime.LockOSThread() // never unlocked, on purpose: see forker
	defer close(f.done)
	for r := range f.reqs {
		r.errc <- r.cmd.Start()
	}
}

// start starts cmd from the forker's thread, with the parent-death signal.
func (f *forker) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	f.reqs <- forkRequest{cmd: cmd, errc: errc}
	return <-errc
}

// close ends the forker and its thread; every process it started must be
// gone, as their parent-death signal fires now. start must not be called
// after close.
func (f *forker) close() {
	close(f.reqs)
	<-f.done
}
