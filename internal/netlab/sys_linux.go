package netlab

import "syscall"

// procAttr puts a started process in its own process group and, unless
// detach, has the kernel kill it if the program that started it dies.
func procAttr(detach bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if detach {
		a.Pdeathsig = 0
	}
	return a
}
