//go:build linux

package dataplane

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCleanup: what a killed process leaves (a TUN link, a stale control
// socket, the source-routing rule) is removed, once; a link of another type
// with the name is left alone; a live control socket is kept.
func TestCleanup(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ip")
	ns := newNetns(t)
	n := startNSThread(t, ns)

	tunName, vethName := uniqueName("rgcl"), uniqueName("rgcv")
	run(t, "ip", "-n", ns, "tuntap", "add", "dev", tunName, "mode", "tun")
	run(t, "ip", "-n", ns, "link", "add", vethName, "type", "veth", "peer", "name", uniqueName("rgcp"))
	run(t, "ip", "-n", ns, "rule", "add", "fwmark", "0x5247", "table", "0x5247", "priority", "0x5247")
	if err := os.MkdirAll(uapiDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(uapiDir, tunName+".sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a stale socket file, as a killed wireguard-go leaves it
	t.Cleanup(func() { os.Remove(sock) })

	var removed []string
	n.do(func() { removed, err = Cleanup(tunName) })
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	got := strings.Join(removed, "; ")
	for _, want := range []string{"link " + tunName, "source routing", "control socket"} {
		if !strings.Contains(got, want) {
			t.Errorf("Cleanup removed %q; want it to name %q", got, want)
		}
	}
	if out, _ := runErr("ip", "-n", ns, "link", "show", tunName); strings.Contains(out, tunName) {
		t.Errorf("the TUN link is still there")
	}
	if out := run(t, "ip", "-n", ns, "rule", "show"); strings.Contains(out, "0x5247") {
		t.Errorf("the source-routing rule is still there:\n%s", out)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the stale control socket is still there (%v)", err)
	}
	n.do(func() { removed, err = Cleanup(tunName) })
	if err != nil || len(removed) != 0 {
		t.Errorf("second Cleanup = %v, %v; want nothing, nil", removed, err)
	}

	// Not ours: a veth of that name stays, and Cleanup says so.
	n.do(func() { removed, err = Cleanup(vethName) })
	if err == nil {
		t.Errorf("Cleanup of a veth link succeeded (removed %v)", removed)
	}
	run(t, "ip", "-n", ns, "link", "show", vethName)

	// A live control socket (its process runs) is kept.
	live, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	n.do(func() { removed, err = Cleanup(tunName) })
	if err != nil || len(removed) != 0 {
		t.Errorf("Cleanup with a live control socket = %v, %v; want nothing, nil", removed, err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("a live control socket was removed: %v", err)
	}
}
