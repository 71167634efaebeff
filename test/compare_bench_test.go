package test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/netlab"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// The side-by-side benchmarks: raftguard against the keepalived recipe it
// replaces (two wireguard-go servers with the same key, keepalived moving
// the VIP and bringing the interface up on the master), a TCP stream
// through the tunnel across a failover, and the embedded data plane
// against standalone wireguard-go. Each prints a table (benchTable); run
// them all with `make bench-compare`.

const (
	compareRounds  = 5
	compareCommand = "go test -run '^$' -bench %s -benchtime 1x -timeout 30m ./test/"
	// comparePing is the client's ping interval when measuring an outage.
	comparePing = 50 * time.Millisecond
	// compareResume bounds the wait for pings to come back after a fault:
	// WireGuard alone takes up to KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15s)
	// plus retries to send a new handshake after a silent server change.
	compareResume = 60 * time.Second
)

// Addresses of the comparison labs, besides those of lab_test.go.
var (
	backendLAN    = netip.MustParsePrefix("192.0.2.100/24")   // the site host behind the VPN, on the LAN
	backendSite   = netip.MustParsePrefix("203.0.113.100/24") // its address in the site range the clients route through the tunnel
	standaloneLAN = netip.MustParsePrefix("192.0.2.20/24")    // standalone wireguard-go server
	standaloneCl  = netip.MustParsePrefix("192.0.2.51/24")    // its client
	tunnelClient4 = netip.MustParsePrefix("198.51.100.2/32")  // tunnel address of a hand-configured client
)

func compareCmd(name string) string { return fmt.Sprintf(compareCommand, name) }

// needTools skips a benchmark when a tool it drives is missing.
func needTools(tb testing.TB, tools ...string) {
	tb.Helper()
	needLab(tb)
	if err := netlab.Available(tools...); err != nil {
		tb.Skipf("%v (apt-get install keepalived iperf3)", err)
	}
}

// clientOutage pings target from h every 50ms, runs fault, and returns the
// longest gap between replies from the fault on. It fails the benchmark if
// replies do not come back within compareResume.
func clientOutage(tb testing.TB, h *netlab.Host, target netip.Addr, fault func()) time.Duration {
	tb.Helper()
	gap, ok := watchOutage(tb, h, target, fault, nil)
	if !ok {
		tb.Fatalf("replies did not resume within %v of the fault", compareResume)
	}
	return gap
}

// watchOutage is clientOutage that gives up early, returning false, once
// stuck reports that the client cannot recover by itself (or after
// compareResume).
func watchOutage(tb testing.TB, h *netlab.Host, target netip.Addr, fault func(), stuck func() bool) (time.Duration, bool) {
	tb.Helper()
	p, err := h.StartPinger(target, comparePing)
	if err != nil {
		tb.Fatal(err)
	}
	defer p.Stop()
	if err := p.WaitReplies(5, 20*time.Second); err != nil {
		tb.Fatalf("no replies before the fault: %v", err)
	}
	p.Mark()
	fault()
	want := p.Replies() + 10
	deadline := time.Now().Add(compareResume)
	for p.WaitReplies(want, 200*time.Millisecond) != nil {
		if time.Now().After(deadline) || stuck != nil && stuck() {
			r := p.Stop()
			tb.Logf("no recovery: %s", r)
			return r.LongestGap, false
		}
	}
	r := p.Stop()
	tb.Logf("%s", r)
	return r.LongestGap, true
}

// benchNotes prints the notes under a table and appends them to the
// report file with it (see benchTable).
func benchNotes(tb testing.TB, text string) {
	tb.Helper()
	report(tb, text)
}

// ratio formats a/b for a table cell.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f×", float64(a)/float64(b))
}

// goal formats whether a median met its goal.
func goal(ok bool, what string) string {
	if ok {
		return "met (" + what + ")"
	}
	return "MISSED (" + what + ")"
}

// BenchmarkCompareFailover measures the outage a WireGuard client pinging
// every 50ms through the tunnel sees, five rounds each: raftguard (three
// nodes) on a SIGKILL of the leader and on `cluster transfer-leader`; the
// keepalived recipe (two nodes) on a crash of the master and on a graceful
// stop of its keepalived.
func BenchmarkCompareFailover(b *testing.B) {
	needTools(b, "keepalived")
	var rgKill, rgTransfer []time.Duration
	var ka kaResults
	for i := 0; i < b.N; i++ {
		k, t := raftguardFailovers(b)
		rgKill, rgTransfer = append(rgKill, k...), append(rgTransfer, t...)
		ka.add(keepalivedFailovers(b))
	}
	rk, rt, kk, ks := spreadOf(rgKill), spreadOf(rgTransfer), spreadOf(ka.kills), spreadOf(ka.stops)
	kaOnly := fmt.Sprintf("%d of %d runs: the client roamed to %s and did not recover", ka.kaOnlyStuck, len(ka.kaOnlyMoves), ka.stuckAt)
	if ka.kaOnlyStuck == 0 {
		kaOnly = durSpread(spreadOf(ka.kaOnly))
	} else if len(ka.kaOnly) > 0 {
		kaOnly += "; the others: " + durSpread(spreadOf(ka.kaOnly))
	}
	benchTable(b, "Failover: client outage, raftguard vs the keepalived recipe", compareCmd("CompareFailover"),
		[]string{"Setup", "Fault", "Client outage min / median / max", "Runs", "Backup became MASTER after", "keepalived ÷ raftguard (median)", "Goal"},
		[][]string{
			{"raftguard, 3 nodes", "`kill -9` of the leader's raftguard", durSpread(rk), strconv.Itoa(rk.N), "", "", goal(rk.Median < time.Second, "median < 1 s")},
			{"keepalived recipe, 2 nodes", "crash of the master: `kill -9` of its keepalived (both processes) and wireguard-go", durSpread(kk), strconv.Itoa(kk.N), durSpread(spreadOf(ka.killMoves)), ratio(kk.Median, rk.Median), ""},
			{"raftguard, 3 nodes", "`raftguard cluster transfer-leader`", durSpread(rt), strconv.Itoa(rt.N), "", "", goal(rt.Median < 300*time.Millisecond, "median < 300 ms")},
			{"keepalived recipe, 2 nodes", "graceful stop of the master: SIGTERM to keepalived, then to wireguard-go", durSpread(ks), strconv.Itoa(ks.N), durSpread(spreadOf(ka.stopMoves)), ratio(ks.Median, rt.Median), ""},
			{"keepalived recipe, 2 nodes", "SIGTERM to the master's keepalived only (`systemctl stop keepalived`)", kaOnly, strconv.Itoa(len(ka.kaOnlyMoves)), durSpread(spreadOf(ka.kaOnlyMoves)), "", ""},
		})
	benchNotes(b, `
Outage: the longest gap between ping replies seen by a WireGuard client (Debian wireguard-go,
PersistentKeepalive 25) pinging the tunnel address of the server every 50 ms through the VIP.
keepalived recipe: Debian keepalived (VRRP only, multicast adverts over the lab switch, default
advert_int 1 s, priorities 150/100, nopreempt) moves the VIP; its notify script runs
`+"`ip link set wg up`"+` on MASTER and `+"`down`"+` otherwise; both servers run Debian wireguard-go with
the same private key and peer (`+"`wg setconf`"+`). "Crash" kills, with SIGKILL and by PID, the master's
keepalived VRRP process, its parent and its wireguard-go at once, as a dead server would: no last
advert, the VIP is left on the dead node's NIC (a SIGKILL of raftguard, which embeds wireguard-go,
also takes the interface away and leaves the VIP). "Graceful stop" is planned maintenance: keepalived
sends a priority-0 advert, releases the VIP and takes the link down, then wireguard-go stops.
"Backup became MASTER after": from the fault to the backup's notify script (VRRP's detection); the
rest of the keepalived outage is the client's: the new master has no session and does not know the
client, so traffic resumes only when the client starts a new handshake, after WireGuard's 15 s
without a reply (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT). A new raftguard leader sends the first
handshake itself, to the endpoint the cluster recorded. The last row stops keepalived alone:
Debian's wireguard-go (0.0.20220316) keeps its UDP socket and its session with the client while
its link is down; once the VIP is gone it sends to the client from the node's own address, and the
client roams to that address, where nothing is routed any more. Such a run is stopped as soon as
the client's endpoint leaves the VIP, and repaired (old master restarted, client endpoint reset).
`)
	b.ReportMetric(float64(rk.Median.Milliseconds()), "rg-kill9-median-ms")
	b.ReportMetric(float64(rt.Median.Milliseconds()), "rg-transfer-median-ms")
	b.ReportMetric(float64(kk.Median.Milliseconds()), "ka-kill9-median-ms")
	b.ReportMetric(float64(ks.Median.Milliseconds()), "ka-stop-median-ms")
}

// raftguardFailovers runs the raftguard rounds in a 3-node lab it closes
// before returning.
func raftguardFailovers(b *testing.B) (kills, transfers []time.Duration) {
	lc := newLabCluster(b, 3)
	defer lc.lab.Close() // the next lab gets the CPU; Cleanup's Close is then a no-op
	wc := lc.addClient(lc.servers[1], "bench")
	waitEndpointRecorded(b, lc, lc.servers[1], "bench")
	for range compareRounds {
		leader := lc.leader()
		kills = append(kills, clientOutage(b, lc.client, tunnelServer4, func() { kill(b, leader, syscall.SIGKILL) }))
		checkEndpoint(b, wc, vip4.Addr(), "after a SIGKILL failover")
		lc.start(leader)
		lc.waitHealthy(3)
	}
	for range compareRounds {
		via := lc.servers[0]
		transfers = append(transfers, clientOutage(b, lc.client, tunnelServer4, func() {
			if out, err := lc.cli(via, "cluster", "transfer-leader"); err != nil {
				b.Fatalf("transfer-leader: %v\n%s", err, out)
			}
		}))
		checkEndpoint(b, wc, vip4.Addr(), "after transfer-leader")
		lc.waitHealthy(3)
	}
	return kills, transfers
}

// waitEndpointRecorded waits until the cluster has recorded the client's
// endpoint (the leader samples it once a second), which a new leader uses
// to send the first handshake.
func waitEndpointRecorded(tb testing.TB, lc *labCluster, via *labServer, peer string) {
	tb.Helper()
	want := `"endpoint": "` + client.Addr().String() + `:`
	poll(tb, 15*time.Second, func() error {
		out, err := lc.cli(via, "-o", "json", "peer", "show", peer)
		if err != nil || !strings.Contains(out, want) {
			return fmt.Errorf("endpoint of %s not recorded yet: %v %s", peer, err, out)
		}
		return nil
	})
}

// kaLab is the keepalived recipe: two servers on the lab switch, each with
// Debian wireguard-go (same key, same peer) and keepalived, and a client.
type kaLab struct {
	tb      testing.TB
	lab     *netlab.Lab
	servers []*kaServer
	client  *netlab.Host
	wc      *netlab.WGClient
	conf    string // the servers' WireGuard configuration (wg-quick format)
}

type kaServer struct {
	host     *netlab.Host
	wgName   string
	priority int
	wg       *netlab.WGClient
	ka       *netlab.Keepalived
}

// wgConfigs returns a server configuration (tunnel address 198.51.100.1/24,
// port 51820, MTU 1420) and the configuration of its single client
// (198.51.100.2) whose endpoint is endpoint, with fresh keys.
func wgConfigs(tb testing.TB, endpoint netip.Addr) (server, clientConf string) {
	tb.Helper()
	srv, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	cl, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	psk, err := wgkey.Preshared()
	if err != nil {
		tb.Fatal(err)
	}
	server = fmt.Sprintf(`[Interface]
PrivateKey = %s
ListenPort = 51820
Address = %s/24
MTU = 1420

[Peer]
PublicKey = %s
PresharedKey = %s
AllowedIPs = %s
`, srv.Private, tunnelServer4, cl.Public, psk, tunnelClient4)
	return server, plainClientConf(cl.Private, srv.Public, psk, endpoint)
}

// plainClientConf is a wg-quick client configuration for a plain WireGuard
// server at endpoint:51820 (tunnel address 198.51.100.2, the server's pool
// routed).
func plainClientConf(clientPrivate, serverPublic, psk string, endpoint netip.Addr) string {
	return fmt.Sprintf(`[Interface]
PrivateKey = %s
Address = %s
MTU = 1420

[Peer]
PublicKey = %s
PresharedKey = %s
AllowedIPs = 198.51.100.0/24
Endpoint = %s
PersistentKeepalive = 25
`, clientPrivate, tunnelClient4, serverPublic, psk, netip.AddrPortFrom(endpoint, 51820))
}

func newKALab(tb testing.TB) *kaLab {
	tb.Helper()
	lab, err := netlab.New("rgka")
	if err != nil {
		tb.Fatal(err)
	}
	kl := &kaLab{tb: tb, lab: lab}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, s := range kl.servers {
				if s.ka != nil {
					tb.Logf("--- keepalived %s (tail):\n%s", s.host.Name(), tail(s.ka.Proc().Output(), 40))
				}
			}
		}
		if err := lab.Close(); err != nil {
			tb.Errorf("lab close: %v", err)
		}
	})
	serverConf, clientConf := wgConfigs(tb, vip4.Addr())
	kl.conf = serverConf
	for i := 1; i <= 2; i++ {
		h, err := lab.AddHost(fmt.Sprintf("k%d", i),
			netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i)),
			netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", i)))
		if err != nil {
			tb.Fatal(err)
		}
		kl.servers = append(kl.servers, &kaServer{host: h, wgName: lab.Name("kawg"), priority: 200 - 50*i})
	}
	if kl.client, err = lab.AddHost("c1", client, netip.Prefix{}); err != nil {
		tb.Fatal(err)
	}
	for _, s := range kl.servers {
		kl.boot(s)
	}
	if err := kl.servers[0].ka.WaitState("MASTER", 20*time.Second); err != nil {
		tb.Fatal(err)
	}
	if kl.wc, err = kl.client.StartWireGuardClient(lab.Name("kacl"), clientConf); err != nil {
		tb.Fatal(err)
	}
	return kl
}

// boot starts a server as after a reboot: no VIP on its NIC, wireguard-go
// with the shared configuration, then keepalived, which joins as BACKUP
// (nopreempt) and takes the interface down.
func (kl *kaLab) boot(s *kaServer) {
	tb := kl.tb
	tb.Helper()
	if ok, err := s.host.HasAddr(vip4.Addr()); err == nil && ok {
		if _, err := s.host.Run(context.Background(), "ip", "addr", "del", vip4.String(), "dev", "eth0"); err != nil {
			tb.Fatal(err)
		}
	}
	if s.wg != nil {
		_ = s.wg.Close() // the killed instance: its link went with it; this removes the control socket
	}
	var err error
	if s.wg, err = s.host.StartWireGuardClient(s.wgName, kl.conf); err != nil {
		tb.Fatal(err)
	}
	kl.startKeepalived(s)
}

func (kl *kaLab) startKeepalived(s *kaServer) {
	tb := kl.tb
	tb.Helper()
	ka, err := s.host.StartKeepalived(tb.TempDir(), netlab.VRRPConfig{
		RouterID:   51,
		Priority:   s.priority,
		VIPs:       []netip.Prefix{vip4},
		NoPreempt:  true,
		NotifyLink: s.wgName,
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.ka = ka
	// The first state is BACKUP (the link goes down); the only MASTER
	// transition may come at once for the first server of the lab.
	poll(tb, 20*time.Second, func() error {
		if st := ka.State(); st != "BACKUP" && st != "MASTER" {
			return fmt.Errorf("keepalived in %s: state %q", s.host.Name(), st)
		}
		return nil
	})
}

// master returns the server whose keepalived is MASTER, and the other.
func (kl *kaLab) master() (m, other *kaServer) {
	kl.tb.Helper()
	poll(kl.tb, 20*time.Second, func() error {
		n := 0
		for _, s := range kl.servers {
			if s.ka.State() == "MASTER" {
				m, n = s, n+1
			}
		}
		if n != 1 {
			return fmt.Errorf("%d keepalived masters", n)
		}
		return nil
	})
	for _, s := range kl.servers {
		if s != m {
			other = s
		}
	}
	return m, other
}

// crash kills the server as a power cut would, from the client's point of
// view: keepalived (VRRP process and parent) and wireguard-go, SIGKILL by
// PID.
func (s *kaServer) crash(tb testing.TB) {
	tb.Helper()
	if err := s.ka.Kill(); err != nil {
		tb.Fatal(err)
	}
	if err := s.wg.Proc().Kill(); err != nil {
		tb.Fatal(err)
	}
}

// kaResults are the keepalived recipe's figures: the client's outages and
// the time from the fault to the backup's MASTER transition, per fault;
// and for a stop of keepalived alone, how the client fared.
type kaResults struct {
	kills, stops         []time.Duration
	killMoves, stopMoves []time.Duration
	kaOnly               []time.Duration // outages of the runs that recovered
	kaOnlyStuck          int             // runs where the client roamed to the old master
	kaOnlyMoves          []time.Duration
	stuckAt              string // the address the client roamed to, last time
}

func (r *kaResults) add(o kaResults) {
	r.kills = append(r.kills, o.kills...)
	r.stops = append(r.stops, o.stops...)
	r.killMoves = append(r.killMoves, o.killMoves...)
	r.stopMoves = append(r.stopMoves, o.stopMoves...)
	r.kaOnly = append(r.kaOnly, o.kaOnly...)
	r.kaOnlyStuck += o.kaOnlyStuck
	r.kaOnlyMoves = append(r.kaOnlyMoves, o.kaOnlyMoves...)
	if o.stuckAt != "" {
		r.stuckAt = o.stuckAt
	}
}

// masterAfter waits for s to become MASTER and returns how long after
// fault its notify script ran.
func masterAfter(tb testing.TB, s *kaServer, fault time.Time) time.Duration {
	tb.Helper()
	if err := s.ka.WaitState("MASTER", 10*time.Second); err != nil {
		tb.Fatal(err)
	}
	_, at := s.ka.Transition()
	return at.Sub(fault)
}

// keepalivedFailovers runs the keepalived rounds in a lab it closes before
// returning.
func keepalivedFailovers(b *testing.B) (res kaResults) {
	kl := newKALab(b)
	defer kl.lab.Close()
	p, err := kl.client.StartPinger(tunnelServer4, comparePing)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.WaitReplies(3, 20*time.Second); err != nil {
		b.Fatalf("no ping through the keepalived recipe's tunnel: %v", err)
	}
	p.Stop()
	checkEndpoint(b, kl.wc, vip4.Addr(), "keepalived recipe, before failover")
	for range compareRounds {
		m, other := kl.master()
		var at time.Time
		res.kills = append(res.kills, clientOutage(b, kl.client, tunnelServer4, func() { at = time.Now(); m.crash(b) }))
		res.killMoves = append(res.killMoves, masterAfter(b, other, at))
		checkEndpoint(b, kl.wc, vip4.Addr(), "keepalived recipe, after a crash")
		kl.boot(m)
	}
	// Planned maintenance: the master's services stop gracefully,
	// keepalived first (last advert with priority 0, VIP released, link
	// down), then wireguard-go.
	for range compareRounds {
		m, other := kl.master()
		var at time.Time
		res.stops = append(res.stops, clientOutage(b, kl.client, tunnelServer4, func() {
			at = time.Now()
			if err := m.ka.Stop(10 * time.Second); err != nil {
				b.Fatal(err)
			}
			if err := m.wg.Proc().Stop(syscall.SIGTERM, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}))
		res.stopMoves = append(res.stopMoves, masterAfter(b, other, at))
		checkEndpoint(b, kl.wc, vip4.Addr(), "keepalived recipe, after a graceful stop")
		kl.boot(m)
	}
	// keepalived alone stops; wireguard-go keeps running with its link
	// down. Debian's wireguard-go keeps its UDP socket and its session
	// while the link is down: what it sends to the client once the VIP is
	// gone leaves from the node's own address, and the client roams there,
	// where nothing is forwarded any more.
	for range compareRounds {
		m, other := kl.master()
		var at time.Time
		stuck := func() bool {
			ep, err := kl.wc.Endpoint()
			if err == nil && ep.IsValid() && ep.Addr() != vip4.Addr() {
				res.stuckAt = ep.Addr().String() + " (the old master's own address)"
				return true
			}
			return false
		}
		gap, ok := watchOutage(b, kl.client, tunnelServer4, func() {
			at = time.Now()
			if err := m.ka.Stop(10 * time.Second); err != nil {
				b.Fatal(err)
			}
		}, stuck)
		res.kaOnlyMoves = append(res.kaOnlyMoves, masterAfter(b, other, at))
		if ok {
			res.kaOnly = append(res.kaOnly, gap)
			kl.startKeepalived(m)
			continue
		}
		res.kaOnlyStuck++
		// Repair: restart the old master (its wireguard-go forgets the
		// session) and point the client back at the VIP, as its user
		// would by restarting the tunnel.
		if err := m.wg.Proc().Stop(syscall.SIGTERM, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		kl.boot(m)
		kl.resetClientEndpoint()
		poll(b, compareResume, func() error {
			_, err := kl.client.PingRTTs(context.Background(), tunnelServer4, 1, 0)
			return err
		})
	}
	return res
}

// resetClientEndpoint points the client's peer back at the VIP.
func (kl *kaLab) resetClientEndpoint() {
	kl.tb.Helper()
	ctx := context.Background()
	out, err := kl.client.Run(ctx, "wg", "show", kl.wc.Name(), "peers")
	if err != nil {
		kl.tb.Fatal(err)
	}
	peer := strings.TrimSpace(out)
	if _, err := kl.client.Run(ctx, "wg", "set", kl.wc.Name(), "peer", peer,
		"endpoint", netip.AddrPortFrom(vip4.Addr(), 51820).String()); err != nil {
		kl.tb.Fatal(err)
	}
}

// addBackend puts a site host behind the VPN: on the LAN at 192.0.2.100,
// with 203.0.113.100 (a range the clients route through the tunnel), and
// the VIP as its gateway back to the tunnel pool. Every server forwards and
// routes the site range to it, so the site is reachable through whichever
// node leads.
func addBackend(tb testing.TB, lc *labCluster) *netlab.Host {
	tb.Helper()
	h, err := lc.lab.AddHost("site", backendLAN, netip.Prefix{})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range [][]string{
		{"ip", "addr", "add", backendSite.String(), "dev", "eth0"},
		{"ip", "route", "add", pool4, "via", vip4.Addr().String()},
	} {
		if _, err := h.Run(ctx, c[0], c[1:]...); err != nil {
			tb.Fatal(err)
		}
	}
	for _, s := range lc.servers {
		for _, c := range [][]string{
			{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
			{"ip", "route", "add", backendSite.Masked().String(), "via", backendLAN.Addr().String()},
		} {
			if _, err := s.host.Run(ctx, c[0], c[1:]...); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return h
}

// tcpRun is one iperf3 stream across a failover.
type tcpRun struct {
	stall       time.Duration // longest time without a byte received, from shortly before the fault
	survived    bool          // the test completed on the same connection and moved data after the stall
	retransmits int
	err         string // iperf3's error, if it cut the test short
}

// BenchmarkCompareTCPFailover runs TCP streams through the tunnel across
// raftguard failovers, 4s into 12s streams (iperf3 -R: the client
// receives): from a host of the site behind the VPN, five SIGKILLs of the
// leader and five transfers; and, for contrast, five SIGKILLs during a
// stream from the leader itself (its tunnel address). It reports whether
// the connection survived and how long the client received nothing.
func BenchmarkCompareTCPFailover(b *testing.B) {
	needTools(b, "iperf3", "ss")
	const (
		length  = 12 * time.Second
		faultAt = 4 * time.Second
	)
	var kills, transfers, direct []tcpRun
	for i := 0; i < b.N; i++ {
		lc := newLabCluster(b, 3)
		site := addBackend(b, lc)
		wc := lc.addClient(lc.servers[1], "bench")
		if !containsPrefix(wc.Routes(), backendSite.Masked()) {
			b.Fatalf("the client does not route %v through the tunnel (routes %v)", backendSite.Masked(), wc.Routes())
		}
		waitEndpointRecorded(b, lc, lc.servers[1], "bench")
		iperfs := map[*netlab.Host]*netlab.Proc{}
		startIperf := func(h *netlab.Host) {
			if p := iperfs[h]; p != nil {
				_ = p.Stop(syscall.SIGTERM, 5*time.Second) // a server left busy by a lost stream
			}
			p, err := h.StartIperfServer(0)
			if err != nil {
				b.Fatal(err)
			}
			iperfs[h] = p
		}
		for _, h := range append([]*netlab.Host{site}, lc.serverHosts()...) {
			startIperf(h)
		}
		poll(b, 15*time.Second, func() error {
			_, err := lc.client.PingRTTs(context.Background(), backendSite.Addr(), 1, 0)
			return err
		})
		run := func(target netip.Addr, fault func()) tcpRun {
			type res struct {
				r   *netlab.IperfResult
				err error
			}
			done := make(chan res, 1)
			go func() {
				r, err := lc.client.Iperf(context.Background(), target,
					netlab.IperfOptions{Duration: length, Interval: 100 * time.Millisecond, Reverse: true})
				done <- res{r, err}
			}()
			select { // the stream's schedule: fault at faultAt
			case <-time.After(faultAt):
			case d := <-done:
				b.Fatalf("iperf3 ended before the fault: %+v %v", d.r, d.err)
			}
			fault()
			d := <-done
			if d.err != nil {
				b.Fatal(d.err)
			}
			// The stream's clock starts once connected, a little after
			// the schedule's: the failover's stall is the longest one
			// starting from shortly before the fault to 2s after it.
			stall, at := d.r.LongestStallIn(faultAt-500*time.Millisecond, faultAt+2*time.Second)
			tr := tcpRun{stall: stall, retransmits: d.r.Retransmits, err: d.r.Error,
				survived: d.r.Error == "" && d.r.BytesAfter(at+stall) > 0}
			b.Logf("iperf3 from %v: stall %v at %v, error %q, %d retransmits, %.0f Mbit/s received",
				target, stall.Round(time.Millisecond), at.Round(time.Millisecond), d.r.Error, d.r.Retransmits, d.r.ReceivedBps/1e6)
			return tr
		}
		for range compareRounds {
			leader := lc.leader()
			kills = append(kills, run(backendSite.Addr(), func() { kill(b, leader, syscall.SIGKILL) }))
			lc.start(leader)
			lc.waitHealthy(3)
		}
		for range compareRounds {
			via := lc.servers[0]
			transfers = append(transfers, run(backendSite.Addr(), func() {
				if out, err := lc.cli(via, "cluster", "transfer-leader"); err != nil {
					b.Fatalf("transfer-leader: %v\n%s", err, out)
				}
			}))
			lc.waitHealthy(3)
		}
		for range compareRounds {
			leader := lc.leader()
			direct = append(direct, run(tunnelServer4, func() { kill(b, leader, syscall.SIGKILL) }))
			lc.start(leader)
			lc.waitHealthy(3)
			startIperf(leader.host)
		}
		checkEndpoint(b, wc, vip4.Addr(), "after the TCP failovers")
		lc.lab.Close()
	}
	row := func(stream, fault string, runs []tcpRun) []string {
		var stalls []time.Duration
		survived, retrans := 0, 0
		errs := map[string]bool{}
		for _, r := range runs {
			stalls = append(stalls, r.stall)
			retrans += r.retransmits
			if r.survived {
				survived++
			}
			if r.err != "" {
				errs[r.err] = true
			}
		}
		outcome := fmt.Sprintf("%d of %d", survived, len(runs))
		for e := range errs {
			outcome += "; iperf3: " + strings.ReplaceAll(e, "|", "/")
		}
		s := spreadOf(stalls)
		zero, retr := durSpread(s), fmt.Sprintf("%.0f", float64(retrans)/float64(max(len(runs), 1)))
		if survived == 0 {
			zero, retr = "until the end of the stream (connection lost)", "n/a (no end-of-test report)"
		}
		return []string{stream, fault, outcome, zero, strconv.Itoa(s.N), retr}
	}
	benchTable(b, "TCP stream through the tunnel across a raftguard failover", compareCmd("CompareTCPFailover"),
		[]string{"Stream (client receives)", "Fault, 4 s into a 12 s stream", "Connection survived", "Time at zero throughput min / median / max", "Runs", "Retransmits per run (mean)"},
		[][]string{
			row("from a site host behind the VPN", "`kill -9` of the leader", kills),
			row("from a site host behind the VPN", "`cluster transfer-leader`", transfers),
			row("from the leader's tunnel address", "`kill -9` of the leader", direct),
		})
	benchNotes(b, `
The stream is `+"`iperf3 -c ADDR -R -t 12 -i 0.1`"+` from the client; zero throughput is counted at the
receiver (the longest run of 100 ms intervals without a byte that starts between 0.5 s before and
2 s after the fault; the machine's load makes other short stalls too). The site host
(203.0.113.100) routes the tunnel pool through the VIP and every node routes the site, so the
connection's ends are the client and the site host, not a server: it survives a failover, and the
time at zero includes TCP's retransmission back-off once the tunnel is back. The last row ends on
the server itself (iperf3 -s runs on every node): the new leader's kernel does not know the
connection, which stalls until the client next sends (iperf3's end-of-test message) and is reset.
Retransmits are the sender's over the whole stream, mostly drops of the userspace tunnel at full
speed on this 2-core machine, not the failover.
`)
	for name, runs := range map[string][]tcpRun{"kill9": kills, "transfer": transfers} {
		var stalls []time.Duration
		for _, r := range runs {
			stalls = append(stalls, r.stall)
		}
		b.ReportMetric(float64(spreadOf(stalls).Median.Milliseconds()), name+"-stall-median-ms")
	}
}

// serverHosts returns the hosts of the cluster's servers.
func (lc *labCluster) serverHosts() []*netlab.Host {
	var out []*netlab.Host
	for _, s := range lc.servers {
		out = append(out, s.host)
	}
	return out
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// dataPath is one tunnel to measure: a client host and the server's tunnel
// address it reaches.
type dataPath struct {
	name   string
	client *netlab.Host
	// up/down: bits per second received, client to server and back;
	// rtts: every round-trip time of every run; avg: each run's mean.
	up, down []float64
	rtts     []time.Duration
	avg      []time.Duration
	sent     int // pings sent; len(rtts) came back
}

// BenchmarkCompareDataPlane measures TCP throughput (iperf3, 10s each way)
// and ping latency (200 pings, 10ms apart) through raftguard's embedded
// userspace interface and through a standalone Debian wireguard-go server
// configured with `wg setconf` and the same MTU, on the same lab switch,
// five runs each, alternating.
func BenchmarkCompareDataPlane(b *testing.B) {
	needTools(b, "iperf3", "ss")
	const length = 10 * time.Second
	lc := newLabCluster(b, 3)
	lc.addClient(lc.servers[1], "bench")
	// On every node: the tunnel address is the leader's, wherever it is.
	for _, h := range lc.serverHosts() {
		if _, err := h.StartIperfServer(0); err != nil {
			b.Fatal(err)
		}
	}
	leader := lc.leader()
	mtu := linkMTU(b, leader.host, leader.wg)

	// The standalone server and its client, on the same switch.
	saHost, err := lc.lab.AddHost("wg", standaloneLAN, netip.Prefix{})
	if err != nil {
		b.Fatal(err)
	}
	saClient, err := lc.lab.AddHost("c2", standaloneCl, netip.Prefix{})
	if err != nil {
		b.Fatal(err)
	}
	serverConf, clientConf := wgConfigs(b, standaloneLAN.Addr())
	serverConf = strings.Replace(serverConf, "MTU = 1420", fmt.Sprintf("MTU = %d", mtu), 1)
	clientConf = strings.Replace(clientConf, "MTU = 1420", fmt.Sprintf("MTU = %d", mtu), 1)
	if _, err := saHost.StartWireGuardClient(lc.lab.Name("sawg"), serverConf); err != nil {
		b.Fatal(err)
	}
	if _, err := saClient.StartWireGuardClient(lc.lab.Name("sacl"), clientConf); err != nil {
		b.Fatal(err)
	}
	if _, err := saHost.StartIperfServer(0); err != nil {
		b.Fatal(err)
	}
	paths := []*dataPath{{name: "raftguard (embedded wireguard-go)", client: lc.client}, {name: "standalone Debian wireguard-go", client: saClient}}
	ctx := context.Background()
	for _, p := range paths {
		poll(b, 15*time.Second, func() error { // handshake done
			_, err := p.client.PingRTTs(ctx, tunnelServer4, 1, 0)
			return err
		})
	}
	// measure runs one iperf3 test. A raftguard run cut short by a change
	// of leader (on a saturated machine heartbeats can starve) is counted
	// and run again, up to three times.
	leaderChanges := 0
	measure := func(p *dataPath, reverse bool) *netlab.IperfResult {
		for try := 0; ; try++ {
			before := lc.leader()
			r, err := p.client.Iperf(ctx, tunnelServer4, netlab.IperfOptions{Duration: length, Reverse: reverse})
			if err == nil && r.Error == "" {
				return r
			}
			if err == nil {
				err = errors.New(r.Error)
			}
			if p.client != lc.client || try == 3 {
				b.Fatalf("iperf3 through %s: %v", p.name, err)
			}
			after := lc.waitHealthy(3)
			if after.LeaderID == before.id {
				b.Fatalf("iperf3 through %s failed without a change of leader: %v", p.name, err)
			}
			leaderChanges++
			b.Logf("iperf3 through %s cut short: leader %s -> %s; again", p.name, before.id, after.LeaderID)
		}
	}
	for i := 0; i < b.N; i++ {
		for range compareRounds {
			for _, p := range paths {
				for _, reverse := range []bool{false, true} {
					r := measure(p, reverse)
					if reverse {
						p.down = append(p.down, r.ReceivedBps)
					} else {
						p.up = append(p.up, r.ReceivedBps)
					}
				}
				rtts, err := p.client.PingRTTs(ctx, tunnelServer4, 200, 10*time.Millisecond)
				if err != nil {
					b.Fatal(err)
				}
				p.sent += 200
				var sum time.Duration
				for _, d := range rtts {
					sum += d
				}
				p.rtts = append(p.rtts, rtts...)
				p.avg = append(p.avg, sum/time.Duration(len(rtts)))
			}
		}
	}
	rg, sa := paths[0], paths[1]
	mbit := func(xs []float64) string {
		s := spreadOf(xs)
		return fmt.Sprintf("%.0f / %.0f / %.0f Mbit/s", s.Min/1e6, s.Median/1e6, s.Max/1e6)
	}
	pct := func(a, b float64) string { return fmt.Sprintf("%.0f %%", 100*a/b) }
	upR := spreadOf(rg.up).Median / spreadOf(sa.up).Median
	downR := spreadOf(rg.down).Median / spreadOf(sa.down).Median
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
	lat := func(p *dataPath) string {
		s := spreadOf(p.avg)
		return fmt.Sprintf("avg %s / %s / %s; p50 %s, p99 %s; %.1f %% lost", us(s.Min), us(s.Median), us(s.Max),
			us(percentile(p.rtts, 50)), us(percentile(p.rtts, 99)), 100*float64(p.sent-len(p.rtts))/float64(max(p.sent, 1)))
	}
	benchTable(b, "Data plane: raftguard's embedded interface vs standalone wireguard-go", compareCmd("CompareDataPlane"),
		[]string{"Measure", paths[0].name, paths[1].name, "raftguard ÷ standalone (median)", "Goal"},
		[][]string{
			{"TCP client → server (iperf3 -t 10)", mbit(rg.up), mbit(sa.up), pct(spreadOf(rg.up).Median, spreadOf(sa.up).Median), goal(upR >= 0.9, "≥ 90 %")},
			{"TCP server → client (iperf3 -R -t 10)", mbit(rg.down), mbit(sa.down), pct(spreadOf(rg.down).Median, spreadOf(sa.down).Median), goal(downR >= 0.9, "≥ 90 %")},
			{"Ping RTT (200 × 10 ms per run; avg min / median / max over runs, p50/p99 over all)", lat(rg), lat(sa),
				pct(float64(spreadOf(rg.avg).Median), float64(spreadOf(sa.avg).Median)), ""},
		})
	benchNotes(b, fmt.Sprintf(`
Both servers and clients sit on the same lab switch (veth, MTU 1500); tunnel MTU %d on both sides;
iperf3 runs in the server's namespace against its tunnel address 198.51.100.1, a run every %v in
each direction, the two setups alternating. Throughput is the receiver's average. All of it
shares the machine's CPU cores: the figures compare the two setups with each other, not with
a real network. raftguard runs cut short by a change of leader and run again: %d.
`, mtu, length, leaderChanges))
	b.ReportMetric(100*upR, "rg-up-%-of-standalone")
	b.ReportMetric(100*downR, "rg-down-%-of-standalone")
}

// linkMTU reads the MTU of link dev in the host.
func linkMTU(tb testing.TB, h *netlab.Host, dev string) int {
	tb.Helper()
	out, err := h.Run(context.Background(), "cat", filepath.Join("/sys/class/net", dev, "mtu"))
	if err != nil {
		tb.Fatal(err)
	}
	mtu, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || mtu < 576 {
		tb.Fatalf("MTU of %s: %q", dev, out)
	}
	return mtu
}

// TestCompareHelpers checks the small formatting helpers of the tables.
func TestCompareHelpers(t *testing.T) {
	if got := ratio(3*time.Second, time.Second); got != "3.0×" {
		t.Errorf("ratio = %q", got)
	}
	if got := ratio(time.Second, 0); got != "n/a" {
		t.Errorf("ratio by zero = %q", got)
	}
	if got := goal(false, "x"); !strings.HasPrefix(got, "MISSED") {
		t.Errorf("goal(false) = %q", got)
	}
	if !containsPrefix([]netip.Prefix{backendSite.Masked()}, netip.MustParsePrefix("203.0.113.0/24")) {
		t.Error("containsPrefix missed an equal prefix")
	}
	if !strings.Contains(compareCmd("X"), "-bench X ") {
		t.Errorf("command %q", compareCmd("X"))
	}
}
