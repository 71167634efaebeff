package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"
)

func TestParseWGQuick(t *testing.T) {
	conf := `# a client
[Interface]
PrivateKey = cHJpdmF0ZQ==
Address = 198.51.100.2/32, fd00:99::2/128
address = 203.0.113.5
DNS = 192.0.2.53
MTU = 1380
PostUp = echo hi # never run

[Peer]
PublicKey = cHVibGlj
PresharedKey = cHNr
Endpoint = 192.0.2.1:51820
AllowedIPs = 0.0.0.0/0, ::/0
AllowedIPs = 10.1.2.3/8
PersistentKeepalive = 25
`
	q, err := parseWGQuick(conf)
	if err != nil {
		t.Fatal(err)
	}
	wantAddrs := []netip.Prefix{
		netip.MustParsePrefix("198.51.100.2/32"),
		netip.MustParsePrefix("fd00:99::2/128"),
		netip.MustParsePrefix("203.0.113.5/32"),
	}
	if !slices.Equal(q.addrs, wantAddrs) {
		t.Errorf("addrs = %v, want %v", q.addrs, wantAddrs)
	}
	if q.mtu != 1380 {
		t.Errorf("mtu = %d, want 1380", q.mtu)
	}
	wantAllowed := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),
		netip.MustParsePrefix("::/0"),
		netip.MustParsePrefix("10.0.0.0/8"),
	}
	if !slices.Equal(q.allowed, wantAllowed) {
		t.Errorf("allowed = %v, want %v", q.allowed, wantAllowed)
	}
	if want := []netip.Addr{netip.MustParseAddr("192.0.2.1")}; !slices.Equal(q.endpoints, want) {
		t.Errorf("endpoints = %v, want %v", q.endpoints, want)
	}
	for _, gone := range []string{"Address", "DNS", "MTU", "PostUp", "#"} {
		if strings.Contains(q.setconf, gone) {
			t.Errorf("setconf config still has %s:\n%s", gone, q.setconf)
		}
	}
	for _, kept := range []string{"[Interface]", "PrivateKey = cHJpdmF0ZQ==", "[Peer]", "PresharedKey = cHNr",
		"Endpoint = 192.0.2.1:51820", "AllowedIPs = 0.0.0.0/0, ::/0", "PersistentKeepalive = 25"} {
		if !strings.Contains(q.setconf, kept) {
			t.Errorf("setconf config lost %q:\n%s", kept, q.setconf)
		}
	}

	for _, bad := range []string{
		"PrivateKey = x",                   // outside a section
		"[Interface]\nAddress = nonsense",  // bad address
		"[Interface]\nMTU = 12",            // bad MTU
		"[Peer]\nAllowedIPs = 300.0.0.0/8", // bad prefix
		"[Wat]\nKey = value",               // unknown section
		"[Interface]\nthis line has no eq", // not key = value
	} {
		if _, err := parseWGQuick(bad); err == nil {
			t.Errorf("parseWGQuick(%q) succeeded", bad)
		}
	}
}

func TestLabRoutes(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	lan := pp("192.0.2.0/24", "2001:db8::/64")
	ep := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	for _, c := range []struct {
		allowed []netip.Prefix
		want    []netip.Prefix
	}{
		{pp("0.0.0.0/0", "::/0"), pp("198.51.100.0/24", "203.0.113.0/24", "fd00::/8")},
		{pp("198.51.100.0/24"), pp("198.51.100.0/24")},
		{pp("198.51.100.7/32", "198.51.100.0/24"), pp("198.51.100.7/32", "198.51.100.0/24")},
		{pp("10.0.0.0/8", "0.0.0.0/1"), nil},                      // outside the lab ranges
		{pp("192.0.2.0/24", "192.0.0.0/8"), nil},                  // the LAN itself, and wider
		{pp("192.0.2.77/32"), pp("192.0.2.77/32")},                // narrower than the LAN
		{pp("192.0.2.0/25"), nil},                                 // holds the endpoint
		{pp("2001:db8:1::/48"), pp("2001:db8:1::/48")},            // beside the LAN
		{pp("2001:db8::/32", "fd00:99::/64"), pp("fd00:99::/64")}, // wider than the LAN
	} {
		if got := labRoutes(c.allowed, lan, ep); !slices.Equal(got, c.want) {
			t.Errorf("labRoutes(%v) = %v, want %v", c.allowed, got, c.want)
		}
	}
}

func TestParseReplyAndGaps(t *testing.T) {
	tm, ok := parseReply("[1700000000.123456] 64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.050 ms")
	if !ok || !tm.Equal(time.Unix(1700000000, 123456000)) {
		t.Errorf("parseReply = %v, %v", tm, ok)
	}
	for _, l := range []string{
		"[1700000000.123456] 64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.050 ms (DUP!)",
		"[1700000000.123456] From 192.0.2.1 icmp_seq=3 Destination Host Unreachable",
		"PING 192.0.2.2 (192.0.2.2) 56(84) bytes of data.",
		"64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.050 ms",
	} {
		if _, ok := parseReply(l); ok {
			t.Errorf("parseReply(%q) accepted it", l)
		}
	}

	t0 := time.Unix(1700000000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	replies := []time.Time{at(0), at(50), at(100), at(1600), at(1650), at(1700)}
	for _, c := range []struct {
		mark, stop int // ms
		longest    int // ms
		gapFrom    []int
	}{
		{mark: 0, stop: 1720, longest: 1500, gapFrom: []int{100}},
		// The outage began before Mark: it counts from the last reply.
		{mark: 120, stop: 1720, longest: 1500, gapFrom: []int{100}},
		// Marked before the first reply: the wait for it counts.
		{mark: -400, stop: 1720, longest: 1500, gapFrom: []int{-400, 100}},
		// No reply since Mark: the gap runs to Stop.
		{mark: 1700, stop: 2700, longest: 1000, gapFrom: []int{1700}},
	} {
		longest, gs := gaps(replies, at(c.mark), at(c.stop), 200*time.Millisecond)
		var from []int
		for _, g := range gs {
			from = append(from, int(g.From.Sub(t0).Milliseconds()))
		}
		if longest != time.Duration(c.longest)*time.Millisecond || !slices.Equal(from, c.gapFrom) {
			t.Errorf("mark %d, stop %d: gaps = %v, %v; want %dms, gaps from %v", c.mark, c.stop, longest, gs, c.longest, c.gapFrom)
		}
	}
}

func TestParseLinkKind(t *testing.T) {
	for js, want := range map[string]string{
		`[{"ifindex":5,"ifname":"wg0","linkinfo":{"info_kind":"wireguard"}}]`:                      "wireguard",
		`[{"ifindex":5,"ifname":"wg0","linkinfo":{"info_kind":"tun","info_data":{"type":"tun"}}}]`: "tun",
		`[{"ifindex":1,"ifname":"lo","link_type":"loopback"}]`:                                     "",
	} {
		got, err := parseLinkKind([]byte(js))
		if err != nil || got != want {
			t.Errorf("parseLinkKind(%s) = %q, %v; want %q", js, got, err, want)
		}
	}
	if _, err := parseLinkKind([]byte(`[]`)); err == nil {
		t.Error("parseLinkKind([]) = nil error, want one")
	}
}

// newLab returns a lab closed when the test ends, or skips the test.
func newLab(t *testing.T, tools ...string) *Lab {
	t.Helper()
	if err := Available(tools...); err != nil {
		t.Skipf("skipping: %v", err)
	}
	l, err := New("nltest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func addHost(t *testing.T, l *Lab, name, v4, v6 string) *Host {
	t.Helper()
	h, err := l.AddHost(name, netip.MustParsePrefix(v4), netip.MustParsePrefix(v6))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// ping sends one echo request from h to addr.
func ping(h *Host, addr netip.Prefix) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.Run(ctx, "ping", "-n", "-c", "1", "-W", "1", addr.Addr().String())
	return err
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	testutil.Eventually(t, timeout, 50*time.Millisecond, what, f)
}

// pingsAll checks that a and b reach each other over IPv4 and IPv6.
func pingsAll(t *testing.T, a, b *Host) {
	t.Helper()
	for _, c := range []struct {
		from *Host
		to   netip.Prefix
	}{{a, b.IPv4()}, {a, b.IPv6()}, {b, a.IPv4()}, {b, a.IPv6()}} {
		eventually(t, 10*time.Second, fmt.Sprintf("ping %s -> %v", c.from.Name(), c.to.Addr()), func() error {
			return ping(c.from, c.to)
		})
	}
}

// pingsNone checks that a reaches b neither over IPv4 nor over IPv6.
func pingsNone(t *testing.T, a, b *Host) {
	t.Helper()
	for _, to := range []netip.Prefix{b.IPv4(), b.IPv6()} {
		if err := ping(a, to); err == nil {
			t.Errorf("ping %s -> %v succeeded; want it cut off", a.Name(), to.Addr())
		}
	}
}

func TestTwoHostsLinkDownIsolate(t *testing.T) {
	l := newLab(t, "ping", "nft")
	a := addHost(t, l, "a", "192.0.2.1/24", "2001:db8::1/64")
	b := addHost(t, l, "b", "192.0.2.2/24", "2001:db8::2/64")

	addrs, err := b.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Prefix{b.IPv4(), b.IPv6()}; !slices.Equal(addrs, want) {
		t.Errorf("Addrs = %v, want %v", addrs, want)
	}
	if ok, err := b.HasAddr(b.IPv6().Addr()); err != nil || !ok {
		t.Errorf("HasAddr(%v) = %v, %v", b.IPv6().Addr(), ok, err)
	}

	pingsAll(t, a, b)

	if err := b.LinkDown(); err != nil {
		t.Fatal(err)
	}
	pingsNone(t, a, b)
	if err := b.LinkUp(); err != nil {
		t.Fatal(err)
	}
	pingsAll(t, a, b)
	// The link flap kept b's addresses.
	if addrs, err := b.Addrs(); err != nil || len(addrs) != 2 {
		t.Errorf("Addrs after LinkUp = %v, %v", addrs, err)
	}

	for range 2 { // both idempotent
		if err := b.Isolate(); err != nil {
			t.Fatal(err)
		}
	}
	pingsNone(t, a, b)
	pingsNone(t, b, a)
	for range 2 {
		if err := b.Heal(); err != nil {
			t.Fatal(err)
		}
	}
	pingsAll(t, a, b)
}

// listNamespaces returns the output of `ip netns list`.
func listNamespaces(t *testing.T, l *Lab) string {
	t.Helper()
	out, err := l.run(context.Background(), "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCloseRemovesEverything(t *testing.T) {
	l := newLab(t, "sleep")
	h := addHost(t, l, "h", "192.0.2.1/24", "2001:db8::1/64")
	sleeper, err := h.Start("sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	// One that ignores SIGTERM (the ignored disposition survives exec).
	stubborn, err := h.Start("sh", "-c", `trap "" TERM; exec sleep 300`)
	if err != nil {
		t.Fatal(err)
	}
	// Stop escalates to SIGKILL after the timeout.
	stubborn2, err := h.Start("sh", "-c", `trap "" TERM; exec sleep 300`)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "sh to exec sleep", func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", stubborn2.PID()))
		if err != nil || strings.TrimSpace(string(b)) != "sleep" {
			return fmt.Errorf("comm %q, %v", b, err)
		}
		return nil
	})
	if err := stubborn2.Stop(syscall.SIGTERM, 200*time.Millisecond); !errors.Is(err, ErrKilled) {
		t.Errorf("Stop of a process ignoring SIGTERM: err = %v, want ErrKilled", err)
	}
	wgName := l.Name("wgtest")
	sock := filepath.Join(wgSocketDir, wgName+".sock")
	if err := os.MkdirAll(wgSocketDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sock, nil, 0o600); err != nil { // stands in for wireguard-go's socket
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sock) })

	namespaces := l.Namespaces()
	if len(namespaces) != 2 {
		t.Fatalf("Namespaces = %v, want the switch and one host", namespaces)
	}
	list := listNamespaces(t, l)
	for _, ns := range namespaces {
		if !strings.Contains(list, ns) {
			t.Fatalf("ip netns list does not show %s:\n%s", ns, list)
		}
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	list = listNamespaces(t, l)
	if strings.Contains(list, l.ID()) {
		t.Errorf("ip netns list still shows the lab's namespaces:\n%s", list)
	}
	for _, p := range []*Proc{sleeper, stubborn, stubborn2} {
		if !p.Exited() {
			t.Errorf("%v (pid %d) still running after Close", p, p.PID())
		}
		if err := syscall.Kill(p.PID(), 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d of %v still exists after Close (kill 0: %v)", p.PID(), p, err)
		}
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WireGuard socket %s still there after Close (%v)", sock, err)
	}
	if _, err := h.Start("sleep", "1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: err = %v, want ErrClosed", err)
	}
	if _, err := l.AddHost("late", netip.Prefix{}, netip.Prefix{}); !errors.Is(err, ErrClosed) {
		t.Errorf("AddHost after Close: err = %v, want ErrClosed", err)
	}
}

func TestProcOutputAndLog(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "h", "192.0.2.1/24", "2001:db8::1/64")
	logFile := filepath.Join(t.TempDir(), "out.log")
	p, err := h.StartWith(StartOptions{LogFile: logFile, Env: []string{"NETLAB_TEST=hello"}},
		"sh", "-c", `echo "$NETLAB_TEST"; echo oops >&2; exit 3`)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err == nil || p.ExitCode() != 3 {
		t.Errorf("Wait = %v, exit code %d; want exit status 3", err, p.ExitCode())
	}
	if out := p.Output(); !strings.Contains(out, "hello\n") || !strings.Contains(out, "oops\n") {
		t.Errorf("Output = %q", out)
	}
	if b, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(b), "hello\n") {
		t.Errorf("log file holds %q, %v", b, err)
	}
	if err := p.Stop(syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("Stop of an exited process: %v", err)
	}
}

// wgKeys returns a new private key and its public key, made with wg.
func wgKeys(t *testing.T, h *Host) (priv, pub string) {
	t.Helper()
	ctx := context.Background()
	out, err := h.Run(ctx, "wg", "genkey")
	if err != nil {
		t.Fatal(err)
	}
	priv = strings.TrimSpace(out)
	cmd := h.Command(ctx, "wg", "pubkey")
	cmd.Stdin = strings.NewReader(priv + "\n")
	b, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return priv, strings.TrimSpace(string(b))
}

func TestWireGuardOutage(t *testing.T) {
	l := newLab(t, "ping", "wg", "wireguard-go")
	srvHost := addHost(t, l, "srv", "192.0.2.1/24", "2001:db8::1/64")
	cliHost := addHost(t, l, "cli", "192.0.2.2/24", "2001:db8::2/64")
	srvPriv, srvPub := wgKeys(t, srvHost)
	cliPriv, cliPub := wgKeys(t, cliHost)

	srv, err := srvHost.StartWireGuardClient("", fmt.Sprintf(`[Interface]
PrivateKey = %s
ListenPort = 51820
Address = 198.51.100.1/24, fd00:99::1/64

[Peer]
PublicKey = %s
AllowedIPs = 198.51.100.2/32, fd00:99::2/128
`, srvPriv, cliPub))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// A wg-quick client config as raftguard hands it out.
	cli, err := cliHost.StartWireGuardClient("", fmt.Sprintf(`[Interface]
PrivateKey = %s
Address = 198.51.100.2/32, fd00:99::2/128
DNS = 192.0.2.53
MTU = 1380

[Peer]
PublicKey = %s
Endpoint = 192.0.2.1:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
`, cliPriv, srvPub))
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("fd00::/8"),
	}; !slices.Equal(cli.Routes(), want) {
		t.Errorf("client routes = %v, want %v", cli.Routes(), want)
	}

	pinger, err := cliHost.StartPinger(netip.MustParseAddr("198.51.100.1"), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := pinger.WaitReplies(5, 15*time.Second); err != nil {
		t.Fatalf("%v\nping output:\n%s\nclient wireguard-go:\n%s", err, pinger.Output(), cli.Proc().Output())
	}
	eventually(t, 5*time.Second, "IPv6 ping through the tunnel", func() error {
		return ping(cliHost, netip.MustParsePrefix("fd00:99::1/128"))
	})
	if ep, err := cli.Endpoint(); err != nil || ep != netip.MustParseAddrPort("192.0.2.1:51820") {
		t.Errorf("client Endpoint = %v, %v; want 192.0.2.1:51820", ep, err)
	}
	if ep, err := srv.Endpoint(); err != nil || ep.Addr() != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("server sees the client at %v, %v; want 192.0.2.2", ep, err)
	}
	hs, err := cli.LatestHandshake()
	if err != nil || hs.IsZero() || time.Since(hs) > time.Minute {
		t.Errorf("client LatestHandshake = %v, %v; want a recent one", hs, err)
	}

	// Stop the server's interface until the client has seen no reply for
	// a while, then bring it back and have the server send first (as a
	// new raftguard leader does), which makes it initiate a handshake.
	pinger.Mark()
	ctx := context.Background()
	if _, err := srvHost.Run(ctx, "ip", "link", "set", srv.Name(), "down"); err != nil {
		t.Fatal(err)
	}
	const outage = 600 * time.Millisecond
	eventually(t, 10*time.Second, "the pings to stop", func() error {
		if last := pinger.LastReply(); time.Since(last) < outage {
			return fmt.Errorf("last reply %v ago", time.Since(last))
		}
		return nil
	})
	if _, err := srvHost.Run(ctx, "ip", "link", "set", srv.Name(), "up"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the server to reach the client", func() error {
		return ping(srvHost, netip.MustParsePrefix("198.51.100.2/32"))
	})
	if err := pinger.WaitReplies(5, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, pinger.Output())
	}
	r := pinger.Stop()
	t.Logf("%v", r)
	if r.LongestGap < outage || r.LongestGap > 30*time.Second {
		t.Errorf("longest gap %v; want between %v and 30s", r.LongestGap, outage)
	}
	if len(r.Gaps) == 0 || r.Gaps[0].Duration() < outage {
		t.Errorf("gaps %v; want the outage", r.Gaps)
	}
	if r.Sent == 0 || r.Received == 0 || r.Received >= r.Sent {
		t.Errorf("sent %d, received %d; want some lost", r.Sent, r.Received)
	}
	if r.RepliesAfterMark < 5 {
		t.Errorf("%d replies after Mark, want at least 5", r.RepliesAfterMark)
	}
	if r2 := pinger.Stop(); r2.LongestGap != r.LongestGap {
		t.Errorf("second Stop reported %v, want the same report", r2)
	}

	if err := cli.Close(); err != nil {
		t.Errorf("client Close: %v", err)
	}
	if !cli.Proc().Exited() {
		t.Error("client wireguard-go still running after Close")
	}
	if _, err := os.Stat(filepath.Join(wgSocketDir, cli.Name()+".sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("client control socket still there after Close (%v)", err)
	}
	if err := cli.Close(); err != nil {
		t.Errorf("second client Close: %v", err)
	}
}
