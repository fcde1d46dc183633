package stripetest

import (
	"os/exec"
	"runtime"
	"syscall"
)

// canTieToParent: Linux can kill the shared mock when the test process
// dies, whatever way it dies.
const canTieToParent = true

// startTied starts cmd with SIGKILL as its parent-death signal. The kernel
// sends it when the *thread* that forked the child exits, not the process,
// so the fork happens on a locked thread that lives as long as the process.
func startTied(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked and never returns: a goroutine that exits while
		// locked takes its thread down with it, which would fire the signal.
		errc <- cmd.Start()
		select {}
	}()
	return <-errc
}
