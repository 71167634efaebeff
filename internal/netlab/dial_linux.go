package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its namespace handles.
const netnsDir = "/var/run/netns"

// DialContext opens a connection from inside the host's network namespace,
// so that a program in another namespace (a test in the root namespace)
// can reach the lab's addresses without running a process in the host.
// It suits http.Transport.DialContext. The connection, once open, works
// from any thread.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.inNamespace(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// inNamespace runs f on an OS thread of its own that has entered the
// host's network namespace (sockets f opens belong to the host). The
// thread returns to its own namespace afterwards; one that cannot is
// thrown away, never handed back to the Go scheduler.
func (h *Host) inNamespace(f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- fmt.Errorf("netlab: own network namespace: %w", err)
			return
		}
		defer own.Close()
		target, err := os.Open(filepath.Join(netnsDir, h.ns))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("netlab: namespace of %s: %w", h.name, err)
			return
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("netlab: entering the namespace of %s: %w", h.name, err)
			return
		}
		err = f()
		// Unlocked only when back home: otherwise the goroutine ends
		// locked, and the runtime ends the thread with it.
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}
