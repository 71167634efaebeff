package netlab

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// listenIn opens a TCP listener inside host h's namespace.
func listenIn(t *testing.T, h *Host, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := h.inNamespace(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestDialContextFromHost: a connection dialled through a host leaves from
// that host's address, reaches a listener in another host and carries
// data; the dialling goroutine's namespace is left untouched.
func TestDialContextFromHost(t *testing.T) {
	l := newLab(t)
	a := addHost(t, l, "a", "192.0.2.1/24", "2001:db8::1/64")
	b := addHost(t, l, "b", "192.0.2.2/24", "2001:db8::2/64")
	ln := listenIn(t, b, "192.0.2.2:0")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // echo
	}()
	before, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := netip.MustParseAddrPort(c.LocalAddr().String()).Addr(); got != a.IPv4().Addr() {
		t.Fatalf("connection leaves from %s, want host a's %s", got, a.IPv4().Addr())
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	// Every thread of the process is back in (or never left) its own
	// namespace.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net"); err == nil && ns != before {
			t.Fatalf("thread %s is in network namespace %s, the process in %s", task.Name(), ns, before)
		}
	}
	if _, err := b.DialContext(ctx, "tcp", "192.0.2.1:1"); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}
