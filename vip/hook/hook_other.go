//go:build !unix

package hook

import "os/exec"

// setProcessGroup leaves cmd as it is: only its own process is killed on
// timeout.
func setProcessGroup(cmd *exec.Cmd) {}
