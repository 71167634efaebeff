//go:build !linux

package netlab

import "syscall"

// procAttr is nil outside Linux, where a lab cannot run anyway.
func procAttr(detach bool) *syscall.SysProcAttr { return nil }
