package test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/netlab"
)

// The BGP lab: the servers on 192.0.2.0/24 with a router at .254, the
// client on 203.0.113.128/25 behind the router (its own link, no L2 path
// to the servers), the VIP off both subnets.
var (
	bgpVIP        = netip.MustParsePrefix("203.0.113.10/32")
	bgpRouter     = netip.MustParsePrefix("192.0.2.254/24")
	bgpClient     = netip.MustParsePrefix("203.0.113.130/25")
	bgpClientNet  = "203.0.113.128/25"
	bgpClientGate = netip.MustParsePrefix("203.0.113.129/25")
)

// bgpHold is the hold time of the BGP sessions (the default of
// --bgp-hold-time).
const bgpHold = 9 * time.Second

// bgpBIRD is the router's BIRD 2 configuration (docs/runbook.md shows it):
// one eBGP session per server, routes learned into the kernel table.
func bgpBIRD(servers []netip.Addr) netlab.BIRDConfig {
	c := netlab.BIRDConfig{RouterID: bgpRouter.Addr(), ASN: 65000, HoldTime: bgpHold, Accept: netip.MustParsePrefix("203.0.113.0/24")}
	for i, s := range servers {
		c.Neighbors = append(c.Neighbors, netlab.BGPNeighbor{Name: fmt.Sprintf("s%d", i+1), Addr: s, ASN: 65001})
	}
	return c
}

// routerNextHops reads the VIP's next hops from BIRD, and the one of the
// route BIRD chose (empty when there is none).
func routerNextHops(r *netlab.BIRD) (hops []string, best string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, b, err := r.NextHops(ctx, bgpVIP.Addr())
	if err != nil {
		return nil, "", err
	}
	for _, a := range addrs {
		hops = append(hops, a.String())
	}
	if b.IsValid() {
		best = b.String()
	}
	return hops, best, nil
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
	bests    []bestAt // the chosen next hop, at each change
}

// bestAt: from at on, the router's chosen next hop for the VIP was hop.
type bestAt struct {
	at  time.Time
	hop string
}

// bestSince returns how long after since the router's chosen next hop was
// hop, and stayed so until the end of the sampling (false if it never
// settled on hop).
func (hs *hopSampler) bestSince(hop string, since time.Time) (time.Duration, bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if n := len(hs.bests); n == 0 || hs.bests[n-1].hop != hop {
		return 0, false
	}
	return max(hs.bests[len(hs.bests)-1].at.Sub(since), 0), true
}

func startHopSampler(r *netlab.BIRD) *hopSampler {
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
			hops, best, err := routerNextHops(r)
			now := time.Now()
			hs.mu.Lock()
			if err != nil {
				hs.errs++
				hs.mu.Unlock()
				continue
			}
			if n := len(hs.bests); n == 0 || hs.bests[n-1].hop != best {
				hs.bests = append(hs.bests, bestAt{at: now, hop: best})
			}
			hs.mu.Unlock()
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

// bgpRounds is how often TestBGPMode runs each fault (RAFTGUARD_BGP_ROUNDS,
// default 1; BENCHMARKS.md's figures ran 5).
func bgpRounds() int {
	if n, err := strconv.Atoi(os.Getenv("RAFTGUARD_BGP_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 1
}

// latestHandshake reads the newest handshake time of the server's
// WireGuard interface (over all its peers).
func latestHandshake(s *labServer) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := s.host.Run(ctx, "wg", "show", s.wg, "latest-handshakes")
	if err != nil {
		return time.Time{}, fmt.Errorf("wg show %s latest-handshakes: %v: %s", s.wg, err, out)
	}
	var newest int64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.ParseInt(f[1], 10, 64); err == nil && n > newest {
			newest = n
		}
	}
	if newest == 0 {
		return time.Time{}, nil
	}
	return time.Unix(newest, 0), nil
}

// bgpFault is one way TestBGPMode takes the leader away.
type bgpFault struct {
	name string
	// fault takes leadership from cur; undo brings cur back as a member.
	fault, undo func(t *testing.T, lc *labCluster, cur *labServer)
	// multi bounds how long the router may list two next hops for the VIP.
	multi func(hold time.Duration) time.Duration
}

// TestBGPMode: three servers announce the VIP to a BIRD 2 router over eBGP
// (only the leader, as a host route with its own next hop); the client,
// on another subnet with no L2 path to the servers, reaches the server
// through a WireGuard tunnel whose endpoint is the VIP. Across kill -9,
// transfer-leader, SIGSTOP, a leader cut off from the other servers only,
// and a leader cut off from everything, the router ends with exactly one
// next hop for the VIP, the new leader's, and the new leader's interface
// served the client (a handshake after the fault). The windows with no or
// several next hops and the client's outage are printed as figures.
func TestBGPMode(t *testing.T) {
	needLab(t)
	if err := netlab.Available("bird", "birdc"); err != nil {
		t.Skipf("BIRD 2 unavailable: %v (apt-get install bird2)", err)
	}
	lc := newLab(t, "rgb")
	lab := lc.lab
	hold := int(bgpHold / time.Second)
	holdTime := bgpHold
	extra := []string{"--bgp-asn", "65001", "--bgp-neighbor", "192.0.2.254@65000", "--bgp-hold-time", fmt.Sprintf("%ds", hold)}
	var addrs []netip.Addr
	for i := 1; i <= 3; i++ {
		h, err := lab.AddHost(fmt.Sprintf("s%d", i), netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i)), netip.Prefix{})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, h.IPv4().Addr())
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
	if err := cl.MoveBehind(router, "eth1", bgpClientGate); err != nil {
		t.Fatal(err)
	}
	for _, s := range lc.servers {
		if err := s.host.AddRoute(netip.MustParsePrefix(bgpClientNet), bgpRouter.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	bird, err := router.StartBIRD(t.TempDir(), bgpBIRD(addrs), netlab.StartOptions{LogFile: filepath.Join(lc.logDir, "bird.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bird.Proc().Stop(syscall.SIGTERM, 10*time.Second) })

	lc.bootstrap("--vip", bgpVIP.String(), "--vip-mode", "bgp", "--pool", pool4)
	leader := lc.leader()
	oneHop := func(want *labServer) func() error {
		return func() error {
			hops, _, err := routerNextHops(bird)
			if err != nil {
				return err
			}
			if w := want.host.IPv4().Addr().String(); len(hops) != 1 || hops[0] != w {
				return fmt.Errorf("router's next hops for the VIP: %v, want only %s (%s)", hops, w, want.id)
			}
			return nil
		}
	}
	poll(t, 30*time.Second, oneHop(leader))
	// allSessions: the router's session to every server is established.
	allSessions := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sessions, err := bird.Sessions(ctx)
		if err != nil {
			return err
		}
		for _, s := range lc.servers {
			if st := sessions[s.id]; !strings.HasPrefix(st, "Established") {
				return fmt.Errorf("router's session to %s: %q", s.id, st)
			}
		}
		return nil
	}
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
	// The client's tunnel goes to the VIP, through the router.
	lc.addClient(leader, "bgp")
	lc.waitPings()
	// The leader records the client's endpoint, so that each new leader
	// greets the client at once.
	poll(t, 10*time.Second, func() error {
		out, err := lc.cli(leader, "-o", "json", "peer", "show", "bgp")
		if err != nil || !strings.Contains(out, `"endpoint": "`+bgpClient.Addr().String()+`:`) {
			return fmt.Errorf("endpoint not recorded yet: %v %s", err, out)
		}
		return nil
	})

	faults := []bgpFault{
		{
			name:  "kill -9",
			fault: func(t *testing.T, lc *labCluster, cur *labServer) { kill(t, cur, syscall.SIGKILL) },
			undo:  func(t *testing.T, lc *labCluster, cur *labServer) { lc.start(cur) },
			// The killed process's TCP sessions close: the router
			// withdraws at once.
			multi: func(time.Duration) time.Duration { return 0 },
		},
		{
			name: "transfer-leader",
			fault: func(t *testing.T, lc *labCluster, cur *labServer) {
				if out, err := lc.cli(cur, "cluster", "transfer-leader"); err != nil {
					t.Fatalf("transfer-leader: %v\n%s", err, out)
				}
			},
			undo:  func(*testing.T, *labCluster, *labServer) {},
			multi: func(time.Duration) time.Duration { return time.Second },
		},
		{
			name: "SIGSTOP",
			fault: func(t *testing.T, lc *labCluster, cur *labServer) {
				if err := cur.proc.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cur.proc.Signal(syscall.SIGCONT) })
			},
			undo: func(t *testing.T, lc *labCluster, cur *labServer) {
				if err := cur.proc.Signal(syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			},
			// The frozen speaker's routes stay until the router's hold
			// timer expires.
			multi: func(hold time.Duration) time.Duration { return hold + time.Second },
		},
		{
			name: "leader cut off from the other servers",
			fault: func(t *testing.T, lc *labCluster, cur *labServer) {
				var peers []netip.Addr
				for _, s := range others(lc, cur) {
					peers = append(peers, s.host.IPv4().Addr())
				}
				if err := cur.host.CutFrom(peers...); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cur.host.Heal() })
			},
			undo: func(t *testing.T, lc *labCluster, cur *labServer) {
				if err := cur.host.Heal(); err != nil {
					t.Fatal(err)
				}
			},
			// It loses its quorum, steps down and withdraws over its
			// sessions, which still work.
			multi: func(time.Duration) time.Duration { return time.Second },
		},
		{
			name: "leader cut off from everything",
			fault: func(t *testing.T, lc *labCluster, cur *labServer) {
				if err := cur.host.Isolate(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cur.host.Heal() })
			},
			undo: func(t *testing.T, lc *labCluster, cur *labServer) {
				if err := cur.host.Heal(); err != nil {
					t.Fatal(err)
				}
			},
			// Its withdrawal cannot reach the router: the route stays
			// until the hold timer expires.
			multi: func(hold time.Duration) time.Duration { return hold + time.Second },
		},
	}
	type figs struct{ outage, chosen, none, multi []time.Duration }
	got := map[string]*figs{}
	for round := range bgpRounds() {
		for _, f := range faults {
			cur := lc.leader()
			hs := startHopSampler(bird)
			var at time.Time
			gap := outage(t, lc, tunnelServer4, func() { at = time.Now(); f.fault(t, lc, cur) })
			var next *labServer
			poll(t, 15*time.Second, func() error {
				if next = lc.leader(others(lc, cur)...); next == cur {
					return fmt.Errorf("the others still name %s as leader", cur.id)
				}
				return nil
			})
			poll(t, scaled(holdTime)+15*time.Second, oneHop(next))
			// ... and the sampler saw the router choose it.
			poll(t, 10*time.Second, func() error {
				if _, ok := hs.bestSince(next.host.IPv4().Addr().String(), at); !ok {
					return fmt.Errorf("the sampler has not seen the router choose %s's route yet", next.id)
				}
				return nil
			})
			none, multi, n := hs.Stop()
			chosen, ok := hs.bestSince(next.host.IPv4().Addr().String(), at)
			if !ok {
				t.Fatalf("%s: the router never settled on the new leader %s's route", f.name, next.id)
			}
			t.Logf("round %d, %s of %s: client outage %v; router chose the new leader %s's route after %v, without a next hop %v, with several %v (%d samples)",
				round+1, f.name, cur.id, gap.Round(time.Millisecond), next.id, chosen.Round(time.Millisecond), none.Round(time.Millisecond), multi.Round(time.Millisecond), n)
			// Who served: the new leader's interface shook hands with the
			// client after the fault (wg reports whole seconds).
			poll(t, 10*time.Second, func() error {
				hsAt, err := latestHandshake(next)
				if err != nil {
					return err
				}
				if hsAt.Before(at.Truncate(time.Second)) {
					return fmt.Errorf("%s's latest handshake %v is from before the fault at %v", next.id, hsAt, at)
				}
				return nil
			})
			if limit := f.multi(holdTime); multi > limit {
				t.Errorf("%s: the router held several next hops for the VIP for %v, want at most %v", f.name, multi, limit)
			}
			// The newest term's route wins at once (its MED is lower): a
			// stale route, kept until the hold time expires, carries no
			// traffic after the new leader announced.
			if chosen >= holdTime {
				t.Errorf("%s: the router chose the new leader's route only after %v (hold time %v)", f.name, chosen, holdTime)
			}
			if gap > scaled(5*time.Second) {
				t.Errorf("%s: client outage %v in bgp mode", f.name, gap)
			}
			fg := got[f.name]
			if fg == nil {
				fg = &figs{}
				got[f.name] = fg
			}
			fg.outage, fg.chosen = append(fg.outage, gap), append(fg.chosen, chosen)
			fg.none, fg.multi = append(fg.none, none), append(fg.multi, multi)
			f.undo(t, lc, cur)
			lc.waitHealthy(3)
			poll(t, scaled(holdTime)+30*time.Second, oneHop(lc.leader()))
			// The next fault starts with every server's session up: a
			// server frozen or cut off a moment ago may be the next
			// leader.
			poll(t, scaled(holdTime)+30*time.Second, allSessions)
		}
	}
	for _, f := range faults {
		g := got[f.name]
		fmt.Printf("FIGURE bgp %s (hold time %ds, %d runs): client outage %s; router chose the new leader's route after %s; longest without a next hop %s, with several %s\n",
			f.name, hold, len(g.outage), durs(g.outage), durs(g.chosen), durs(g.none), durs(g.multi))
	}
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

// TestRunbookBIRDConfig: the BIRD configuration in docs/runbook.md is the
// one TestBGPMode runs (the runbook shows the first session; a comment
// stands for the others).
func TestRunbookBIRDConfig(t *testing.T) {
	md, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(md)
	start := strings.Index(doc, "### 7.2 BGP mode")
	if start < 0 {
		t.Fatal("docs/runbook.md has no section 7.2 BGP mode")
	}
	doc = doc[start:]
	open := strings.Index(doc, "```text\nlog stderr all;\n")
	if open < 0 {
		t.Fatal("section 7.2 of docs/runbook.md shows no BIRD configuration")
	}
	doc = doc[open+len("```text\n"):]
	doc = doc[:strings.Index(doc, "```")]
	var shown []string
	for _, line := range strings.SplitAfter(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			shown = append(shown, line)
		}
	}
	conf, err := bgpBIRD([]netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")}).Conf()
	if err != nil {
		t.Fatal(err)
	}
	first := conf[:strings.Index(conf, "protocol bgp s2 ")]
	if got := strings.Join(shown, ""); got != first {
		t.Errorf("docs/runbook.md shows\n%s\nTestBGPMode's router runs (first session)\n%s", got, first)
	}
}
