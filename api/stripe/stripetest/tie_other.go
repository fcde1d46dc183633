//go:build !linux

package stripetest

import "os/exec"

// canTieToParent: without a parent-death signal a shared mock could outlive
// the test process, so each test starts and stops its own.
const canTieToParent = false

func startTied(cmd *exec.Cmd) error { return cmd.Start() }
