//go:build unix

package hook

import (
	"os/exec"
	"syscall"
	"time"
)

// setProcessGroup runs cmd in a process group of its own and makes its
// cancellation kill the whole group (a hook's children too), waiting at
// most a second more for its output.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second
}
