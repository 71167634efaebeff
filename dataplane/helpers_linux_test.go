//go:build linux

package dataplane

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"

	"github.com/vishvananda/netns"
)

// Helpers for the tests that need root: network namespaces, a thread that
// runs code inside one, commands, and Debian's wireguard-go as a client.
// Everything a test creates is removed by t.Cleanup, also on failure.

// requireRoot skips the test unless it runs as root with /dev/net/tun and
// the ip tool.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (network namespaces, TUN devices)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("skipped: /dev/net/tun is missing: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: the ip tool (iproute2) is missing")
	}
}

// requireTools skips the test unless the named programs are installed.
func requireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("skipped: %s is not installed", n)
		}
	}
}

// uniqueName returns prefix followed by a random hex suffix (interface names
// must be unique: /var/run/wireguard is shared with other tests).
func uniqueName(prefix string) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// run runs a command and returns its standard output; a failure fails t.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runErr runs a command and returns its standard output, or an error with
// its standard error.
func runErr(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// newNetns creates a network namespace (with lo up) that t's cleanup
// deletes.
func newNetns(t testing.TB) string {
	t.Helper()
	name := uniqueName("rgdpns")
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if _, err := runErr("ip", "netns", "del", name); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// nsThread runs functions on one OS thread that has entered a network
// namespace, so that the sockets, TUN devices and netlink requests the
// Device makes are made there.
type nsThread struct {
	fns  chan func()
	done chan struct{}
}

// startNSThread starts a thread in namespace ns; t's cleanup stops it (the
// thread then exits: it is never unlocked, so never reused).
func startNSThread(t testing.TB, ns string) *nsThread {
	t.Helper()
	n := &nsThread{fns: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(n.done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		h, err := netns.GetFromName(ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for fn := range n.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("enter namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		close(n.fns)
		<-n.done
	})
	return n
}

// do runs fn on the namespace's thread and waits for it.
func (n *nsThread) do(fn func()) {
	finished := make(chan struct{})
	var panicked any
	n.fns <- func() {
		defer close(finished)
		defer func() { panicked = recover() }()
		fn()
	}
	<-finished
	if panicked != nil {
		panic(panicked)
	}
}

// openIn opens a userspace Device inside the namespace; t's cleanup closes
// it and checks that the link and the UAPI socket are gone.
func openIn(t testing.TB, n *nsThread, name string) Device {
	t.Helper()
	return openKindIn(t, n, name, KindUserspace)
}

// openKindIn is openIn for a Device of the given kind.
func openKindIn(t testing.TB, n *nsThread, name, kind string) Device {
	t.Helper()
	var (
		d   Device
		err error
	)
	log := slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	n.do(func() { d, err = Open(name, kind, log.With("component", "dataplane")) })
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() {
		var cerr error
		n.do(func() { cerr = d.Close() })
		if cerr != nil {
			t.Errorf("close %s: %v", name, cerr)
		}
		if _, err := os.Stat(filepath.Join("/var/run/wireguard", name+".sock")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("UAPI socket of %s still there after Close (%v)", name, err)
			os.Remove(filepath.Join("/var/run/wireguard", name+".sock"))
		}
	})
	return d
}

// testWriter sends log lines to t.Log until t's cleanup; the device's
// goroutines may log a little after that, and t.Log would then panic.
type testWriter struct {
	t    testing.TB
	mu   *sync.Mutex // guards *done
	done *bool
}

func newTestWriter(t testing.TB) testWriter {
	w := testWriter{t: t, mu: new(sync.Mutex), done: new(bool)}
	t.Cleanup(func() {
		w.mu.Lock()
		*w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !*w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// eventually polls cond until it returns nil or the deadline passes, then
// fails t with cond's last error. RAFTGUARD_TEST_TIME_SCALE (set by make
// test-kernel, whose VM emulates its CPU) stretches the deadline.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if f, err := strconv.ParseFloat(os.Getenv("RAFTGUARD_TEST_TIME_SCALE"), 64); err == nil && f > 1 {
		timeout = time.Duration(float64(timeout) * f)
	}
	testutil.Eventually(t, timeout, 50*time.Millisecond, what, cond)
}

// wgClient is Debian's wireguard-go running an interface in a namespace.
type wgClient struct {
	ns, name string
	key      string // base64 private key
	pub      string
}

// startWGClient starts `wireguard-go -f name` in namespace ns; t's cleanup
// stops that process (by PID) and removes its UAPI socket.
func startWGClient(t testing.TB, ns string) *wgClient {
	t.Helper()
	c := &wgClient{ns: ns, name: uniqueName("rgdc")}
	k := testKey(t)
	c.key, c.pub = k.String(), k.PublicKey().String()
	var stderr bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", ns, "wireguard-go", "-f", c.name)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start wireguard-go: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// ip netns exec execs wireguard-go: this PID is wireguard-go's.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		os.Remove(filepath.Join("/var/run/wireguard", c.name+".sock"))
	})
	eventually(t, 10*time.Second, "wireguard-go "+c.name+" answers", func() error {
		select {
		case <-exited:
			return fmt.Errorf("wireguard-go exited: %s", stderr.String())
		default:
		}
		_, err := runErr("ip", "netns", "exec", ns, "wg", "show", c.name)
		return err
	})
	return c
}

// set runs `wg set <name> private-key <file> args...` in the namespace.
func (c *wgClient) set(t testing.TB, args ...string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(f, []byte(c.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", append([]string{"netns", "exec", c.ns, "wg", "set", c.name, "private-key", f}, args...)...)
}

// show runs `wg show <name> <what>` in the namespace.
func (c *wgClient) show(t testing.TB, what string) string {
	t.Helper()
	return run(t, "ip", "netns", "exec", c.ns, "wg", "show", c.name, what)
}

// peerField returns the second field of the line of `wg show <name> <what>`
// for the peer pub ("" when absent).
func (c *wgClient) peerField(t testing.TB, what, pub string) string {
	t.Helper()
	for _, line := range strings.Split(c.show(t, what), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == pub {
			return f[1]
		}
	}
	return ""
}
