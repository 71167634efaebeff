package netlab

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeepalivedConf(t *testing.T) {
	c := VRRPConfig{
		RouterID:     51,
		Priority:     150,
		VIPs:         []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")},
		NoPreempt:    true,
		UnicastPeers: []netip.Addr{netip.MustParseAddr("192.0.2.2")},
		NotifyLink:   "wg0",
	}
	conf, err := keepalivedConf(c, "/tmp/x/notify.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"script_user root", "vrrp_instance VI_1 {", "state BACKUP", "interface eth0",
		"virtual_router_id 51", "priority 150", "nopreempt",
		"unicast_peer {\n\t\t192.0.2.2\n\t}", "192.0.2.10/24 dev eth0",
		"notify /tmp/x/notify.sh", `notify_stop "/tmp/x/notify.sh STOP"`,
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "advert_int") {
		t.Errorf("advert_int written without AdvertInterval (keepalived's default expected):\n%s", conf)
	}
	c.AdvertInterval = 250 * time.Millisecond
	c.NoPreempt = false
	if conf, err = keepalivedConf(c, "/s"); err != nil || !strings.Contains(conf, "advert_int 0.25\n") || strings.Contains(conf, "nopreempt") {
		t.Errorf("advert_int 0.25 without nopreempt expected, got %v:\n%s", err, conf)
	}

	vip := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}
	for name, bad := range map[string]VRRPConfig{
		"router id 0":    {RouterID: 0, Priority: 100, VIPs: vip},
		"router id 256":  {RouterID: 256, Priority: 100, VIPs: vip},
		"priority 255":   {RouterID: 1, Priority: 255, VIPs: vip},
		"no VIP":         {RouterID: 1, Priority: 100},
		"bad link":       {RouterID: 1, Priority: 100, VIPs: vip, NotifyLink: "wg0; reboot"},
		"long interface": {RouterID: 1, Priority: 100, VIPs: vip, Interface: "averyveryverylongname"},
		"bad instance":   {RouterID: 1, Priority: 100, VIPs: vip, Instance: "a b"},
		"zero peer":      {RouterID: 1, Priority: 100, VIPs: vip, UnicastPeers: []netip.Addr{{}}},
		"negative int":   {RouterID: 1, Priority: 100, VIPs: vip, AdvertInterval: -time.Second},
	} {
		if _, err := keepalivedConf(bad, "/s"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNotifyScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	script := filepath.Join(dir, "notify.sh")
	// Without a link the script only records the state.
	if err := os.WriteFile(script, []byte(notifyScript("", state)), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"INSTANCE", "VI_1", "MASTER", "150"}, "MASTER"},
		{[]string{"INSTANCE", "VI_1", "BACKUP", "150"}, "BACKUP"},
		{[]string{"STOP"}, "STOP"},
	} {
		if out, err := exec.Command(script, c.args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
		b, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		got, at := parseTransition(string(b))
		if got != c.want || time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
			t.Errorf("%v: recorded %q (%s at %v); want %s now", c.args, b, got, at, c.want)
		}
	}
	s := notifyScript("wg0", state)
	if !strings.Contains(s, "MASTER) ip link set dev wg0 up") || !strings.Contains(s, "*) ip link set dev wg0 down") {
		t.Errorf("script does not set wg0 up on MASTER and down otherwise:\n%s", s)
	}
}

func TestParseTransition(t *testing.T) {
	st, at := parseTransition("MASTER 1700000000.5\n")
	if st != "MASTER" || !at.Equal(time.Unix(1700000000, 5e8)) {
		t.Errorf("got %s at %v", st, at)
	}
	if st, at := parseTransition("BACKUP"); st != "BACKUP" || !at.IsZero() {
		t.Errorf("without a time: %s at %v", st, at)
	}
	if st, _ := parseTransition(" \n"); st != "" {
		t.Errorf("empty record: %q", st)
	}
}

func TestParentPID(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	ppid, err := parentPID(os.Getpid())
	if err != nil || ppid != os.Getppid() {
		t.Fatalf("parentPID = %d, %v; want %d", ppid, err, os.Getppid())
	}
	if _, err := parentPID(-1); err == nil {
		t.Error("parentPID(-1) succeeded")
	}
}

// TestKeepalivedFailover runs the keepalived recipe on two hosts with a
// dummy interface standing for WireGuard: the master holds the VIP with
// its interface up; killed, it leaves the VIP behind and the backup takes
// over; stopped gracefully, the new master releases the VIP and brings its
// interface down.
func TestKeepalivedFailover(t *testing.T) {
	l := newLab(t, "keepalived")
	vip := netip.MustParsePrefix("192.0.2.10/24")
	hosts := []*Host{
		addHost(t, l, "a", "192.0.2.1/24", "2001:db8::1/64"),
		addHost(t, l, "b", "192.0.2.2/24", "2001:db8::2/64"),
	}
	ka := make([]*Keepalived, 2)
	for i, h := range hosts {
		if _, err := h.Run(context.Background(), "ip", "tuntap", "add", "dev", "vpn0", "mode", "tun"); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		k, err := h.StartKeepalived(dir, VRRPConfig{
			RouterID: 51, Priority: 150 - 50*i, VIPs: []netip.Prefix{vip},
			AdvertInterval: 200 * time.Millisecond, NoPreempt: true, NotifyLink: "vpn0",
		})
		if err != nil {
			t.Fatal(err)
		}
		ka[i] = k
	}
	// linkUp reads the administrative state (a TUN device without a
	// process has no carrier).
	linkUp := func(h *Host) bool {
		out, err := h.Run(context.Background(), "ip", "-o", "link", "show", "dev", "vpn0")
		flags, _, _ := strings.Cut(out, ">")
		return err == nil && strings.Contains(flags+",", ",UP,")
	}
	if err := ka[0].WaitState("MASTER", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, ka[0].Proc().Output())
	}
	if err := ka[1].WaitState("BACKUP", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, err := hosts[0].HasAddr(vip.Addr()); err != nil || !ok {
		t.Errorf("master a does not hold the VIP (%v)", err)
	}
	if !linkUp(hosts[0]) || linkUp(hosts[1]) {
		t.Errorf("vpn0 up on a %v, on b %v; want up only on the master", linkUp(hosts[0]), linkUp(hosts[1]))
	}

	vrrp, err := ka[0].VRRPPID()
	if err != nil {
		t.Fatal(err)
	}
	if err := ka[0].Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/proc", itoa(vrrp))); err == nil {
		if ppid, _ := parentPID(vrrp); ppid == ka[0].Proc().PID() {
			t.Errorf("keepalived VRRP process %d still running after Kill", vrrp)
		}
	}
	if err := ka[1].WaitState("MASTER", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, _ := hosts[0].HasAddr(vip.Addr()); !ok {
		t.Error("the killed master released the VIP; a crash should leave it")
	}
	if ok, err := hosts[1].HasAddr(vip.Addr()); err != nil || !ok {
		t.Errorf("new master b does not hold the VIP (%v)", err)
	}
	if !linkUp(hosts[1]) {
		t.Error("vpn0 down on the new master")
	}

	if err := ka[1].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ka[1].State(); got != "STOP" && got != "BACKUP" && got != "FAULT" {
		t.Errorf("state after a graceful stop: %q", got)
	}
	if ok, _ := hosts[1].HasAddr(vip.Addr()); ok {
		t.Error("a gracefully stopped master kept the VIP")
	}
	if linkUp(hosts[1]) {
		t.Error("vpn0 still up after a graceful stop")
	}
	if _, err := hosts[0].StartKeepalived(t.TempDir(), VRRPConfig{RouterID: 0, Priority: 1, VIPs: []netip.Prefix{vip}}); err == nil {
		t.Error("StartKeepalived accepted router id 0")
	}
}
