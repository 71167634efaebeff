package test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/netlab"
)

// The BGP lab: the servers on 192.0.2.0/24 with a router at .254, the
// client on 198.18.0.0/24 behind the router (its own link, no L2 path to
// the servers), the VIP off both subnets.
var (
	bgpVIP     = netip.MustParsePrefix("203.0.113.10/32")
	bgpRouter  = netip.MustParsePrefix("192.0.2.254/24")
	bgpClient  = netip.MustParsePrefix("198.18.0.2/24")
	bgpClientG = "198.18.0.1"
)

// birdConf is the router's BIRD 2 configuration (docs/vip-modes.md shows
// it): one eBGP session per server, routes learned into the kernel table.
func birdConf(servers []string, hold int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `router id 192.0.2.254;
protocol device { scan time 10; }
protocol kernel { ipv4 { import none; export all; }; }
`)
	for i, s := range servers {
		fmt.Fprintf(&b, `protocol bgp s%d {
	local 192.0.2.254 as 65000;
	neighbor %s as 65001;
	hold time %d;
	connect retry time 1;
	ipv4 { import filter { if net ~ [ 203.0.113.0/24{32,32} ] then accept; reject; }; export none; };
}
`, i+1, s, hold)
	}
	return b.String()
}

var birdVia = regexp.MustCompile(`via (192\.0\.2\.\d+)`)

// routerNextHops reads the VIP's next hops from BIRD.
func routerNextHops(r *netlab.Host, sock string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := r.Run(ctx, "birdc", "-s", sock, "show", "route", "for", bgpVIP.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("birdc: %v: %s", err, out)
	}
	var hops []string
	for _, m := range birdVia.FindAllStringSubmatch(out, -1) {
		hops = append(hops, m[1])
	}
	return hops, nil
}

// hopSampler reads the router's next hops for the VIP every 50ms and
// measures how long the count was not one.
type hopSampler struct {
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	none     time.Duration // longest run with no next hop
	multi    time.Duration // longest run with more than one
	runStart time.Time
	runKind  int // 0: one hop, 1: none, 2: several
	samples  int
	errs     int
}

func startHopSampler(r *netlab.Host, sock string) *hopSampler {
	hs := &hopSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(hs.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-hs.stop:
				hs.record(0, time.Now())
				return
			case <-t.C:
			}
			hops, err := routerNextHops(r, sock)
			now := time.Now()
			if err != nil {
				hs.mu.Lock()
				hs.errs++
				hs.mu.Unlock()
				continue
			}
			kind := 0
			switch {
			case len(hops) == 0:
				kind = 1
			case len(hops) > 1:
				kind = 2
			}
			hs.record(kind, now)
		}
	}()
	return hs
}

func (hs *hopSampler) record(kind int, now time.Time) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.samples++
	if kind == hs.runKind {
		return
	}
	if hs.runKind != 0 {
		d := now.Sub(hs.runStart)
		if hs.runKind == 1 {
			hs.none = max(hs.none, d)
		} else {
			hs.multi = max(hs.multi, d)
		}
	}
	hs.runKind, hs.runStart = kind, now
}

func (hs *hopSampler) Stop() (none, multi time.Duration, samples int) {
	close(hs.stop)
	<-hs.done
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.none, hs.multi, hs.samples
}

// TestBGPMode: three servers announce the VIP to a BIRD 2 router only
// while they lead; the client, on another subnet behind the router, pings
// the VIP through kill -9 and transfer-leader, and the router's table holds
// exactly one next hop for the VIP except during a window that is
// measured.
func TestBGPMode(t *testing.T) {
	needLab(t)
	if err := netlab.Available("bird", "birdc"); err != nil {
		t.Skipf("BIRD 2 unavailable: %v (apt-get install bird2)", err)
	}
	lc := newLab(t, "rgb")
	lab := lc.lab
	const hold = 3
	extra := []string{"--bgp-asn", "65001", "--bgp-neighbor", "192.0.2.254@65000", "--bgp-hold-time", fmt.Sprintf("%ds", hold)}
	var addrs []string
	for i := 1; i <= 3; i++ {
		h, err := lab.AddHost(fmt.Sprintf("s%d", i), netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i)), netip.Prefix{})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, h.IPv4().Addr().String())
		lc.servers = append(lc.servers, &labServer{id: fmt.Sprintf("s%d", i), host: h, dir: filepath.Join(t.TempDir(), "data"), wg: lab.Name("rgwg"), extra: extra})
	}
	router, err := lab.AddHost("r1", bgpRouter, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := lab.AddHost("c1", bgpClient, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	// Move the client's link off the switch onto the router: no L2 path
	// from the client to the servers.
	lc.client = cl
	ctx := context.Background()
	sw := lab.SwitchNamespace()
	rns := router.Namespace()
	for _, c := range [][]string{
		{"-n", sw, "link", "set", "p5", "nomaster"},
		{"-n", sw, "link", "set", "p5", "netns", rns},
		{"-n", rns, "link", "set", "p5", "name", "eth1"},
		{"-n", rns, "addr", "add", bgpClientG + "/24", "dev", "eth1"},
		{"-n", rns, "link", "set", "eth1", "up"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", c, err, out)
		}
	}
	if out, err := router.Run(ctx, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := cl.Run(ctx, "ip", "route", "add", "default", "via", bgpClientG); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, s := range lc.servers {
		if out, err := s.host.Run(ctx, "ip", "route", "add", "198.18.0.0/24", "via", bgpRouter.Addr().String()); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	bdir := t.TempDir()
	conf, sock := filepath.Join(bdir, "bird.conf"), filepath.Join(bdir, "bird.ctl")
	if err := os.WriteFile(conf, []byte(birdConf(addrs, hold)), 0o644); err != nil {
		t.Fatal(err)
	}
	bird, err := router.StartWith(netlab.StartOptions{LogFile: filepath.Join(lc.logDir, "bird.log")}, "bird", "-c", conf, "-s", sock, "-f")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bird.Signal(syscall.SIGTERM); <-bird.Done() })

	lc.bootstrap("--vip", bgpVIP.String(), "--vip-mode", "bgp", "--pool", pool4)
	leader := lc.leader()
	oneHop := func(want string) func() error {
		return func() error {
			hops, err := routerNextHops(router, sock)
			if err != nil {
				return err
			}
			if len(hops) != 1 || (want != "" && hops[0] != want) {
				return fmt.Errorf("router's next hops for the VIP: %v, want only %s", hops, want)
			}
			return nil
		}
	}
	poll(t, 30*time.Second, oneHop(leader.host.IPv4().Addr().String()))
	// The VIP is on the leader's dummy interface, not its LAN NIC.
	// (rgvip0 where the kernel has the dummy driver, else lo.)
	isVIP := func(p netip.Prefix) bool { return p.Addr() == bgpVIP.Addr() }
	dummy, _ := leader.host.AddrsOf("rgvip0")
	lo, _ := leader.host.AddrsOf("lo")
	if !slices.ContainsFunc(dummy, isVIP) && !slices.ContainsFunc(lo, isVIP) {
		t.Fatalf("the leader does not hold the VIP on rgvip0 or lo: %v %v", dummy, lo)
	}
	if nic, _ := leader.host.Addrs(); slices.ContainsFunc(nic, isVIP) {
		t.Fatal("the VIP is on the leader's LAN NIC in bgp mode")
	}

	hs := startHopSampler(router, sock)
	killed := leader
	gap := outage(t, lc, bgpVIP.Addr(), func() { kill(t, leader, syscall.SIGKILL) })
	next := lc.leader(others(lc, killed)...)
	poll(t, 15*time.Second, oneHop(next.host.IPv4().Addr().String()))
	none, multi, n := hs.Stop()
	fmt.Printf("FIGURE bgp kill -9: client outage %v; router: longest without a next hop %v, with several %v (%d samples)\n",
		gap.Round(time.Millisecond), none.Round(time.Millisecond), multi.Round(time.Millisecond), n)
	if multi > 0 {
		t.Errorf("the router held two next hops for the VIP for %v after kill -9", multi)
	}
	if gap > scaled(5*time.Second) {
		t.Errorf("client outage after kill -9 in bgp mode: %v", gap)
	}

	lc.start(killed)
	lc.waitHealthy(3)
	cur := lc.leader()
	hs = startHopSampler(router, sock)
	gap = outage(t, lc, bgpVIP.Addr(), func() {
		if out, err := lc.cli(cur, "cluster", "transfer-leader"); err != nil {
			t.Fatalf("transfer-leader: %v\n%s", err, out)
		}
	})
	next = lc.leader()
	poll(t, 15*time.Second, oneHop(next.host.IPv4().Addr().String()))
	none, multi, n = hs.Stop()
	fmt.Printf("FIGURE bgp transfer-leader: client outage %v; router: longest without a next hop %v, with several %v (%d samples)\n",
		gap.Round(time.Millisecond), none.Round(time.Millisecond), multi.Round(time.Millisecond), n)
	if next == cur {
		t.Fatalf("leadership did not move from %s", cur.id)
	}
	if multi > time.Second {
		t.Errorf("the router held two next hops for the VIP for %v during transfer-leader", multi)
	}

	// SIGSTOP: the frozen leader's route goes at hold-time expiry.
	cur = next
	hs = startHopSampler(router, sock)
	stopped := time.Now()
	if err := cur.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cur.proc.Signal(syscall.SIGCONT) })
	var withdrawn time.Duration
	pollFast(t, time.Duration(hold+5)*time.Second, func() error {
		hops, err := routerNextHops(router, sock)
		if err != nil {
			return err
		}
		if slices.Contains(hops, cur.host.IPv4().Addr().String()) {
			return fmt.Errorf("frozen leader still a next hop: %v", hops)
		}
		withdrawn = time.Since(stopped)
		return nil
	})
	next = lc.leader(others(lc, cur)...)
	poll(t, 15*time.Second, oneHop(next.host.IPv4().Addr().String()))
	none, multi, n = hs.Stop()
	fmt.Printf("FIGURE bgp SIGSTOP: frozen leader's route withdrawn after %v (hold time %ds); router: longest without a next hop %v, with several %v (%d samples)\n",
		withdrawn.Round(time.Millisecond), hold, none.Round(time.Millisecond), multi.Round(time.Millisecond), n)
	if err := cur.proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, oneHop(next.host.IPv4().Addr().String()))
}

func others(lc *labCluster, not *labServer) []*labServer {
	var out []*labServer
	for _, s := range lc.servers {
		if s != not {
			out = append(out, s)
		}
	}
	return out
}
