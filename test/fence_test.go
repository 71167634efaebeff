package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitFile is the systemd unit `make install` installs.
const unitFile = "../dist/raftguard.service"

// fenceLimit is how long after a fault a dead or frozen leader may still
// hold the VIP on its NIC: the VIP's kernel lifetime (2s) plus the
// kernel's timer slack.
const fenceLimit = 2500 * time.Millisecond

// unitCommand returns the command line of directive key (ExecStart,
// ExecStopPost...) in the systemd unit, split into words, without
// systemd's prefixes (-, @, +, !, :).
func unitCommand(t testing.TB, key string) []string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key+"=")
		if !ok {
			continue
		}
		v = strings.TrimLeft(v, "-@+!:")
		if w := strings.Fields(v); len(w) > 0 {
			return w
		}
	}
	t.Fatalf("%s has no %s", unitFile, key)
	return nil
}

// execStopPost runs the unit's ExecStopPost command line on the server, as
// systemd does after the process ended (with the data dir the unit's
// EnvironmentFile names, RAFTGUARD_DATA_DIR); the installed binary is the
// one under test. It returns the command's output.
func (lc *labCluster) execStopPost(s *labServer) (string, error) {
	lc.t.Helper()
	argv := unitCommand(lc.t, "ExecStopPost")
	if argv[0] != "/usr/local/bin/raftguard" {
		lc.t.Fatalf("ExecStopPost runs %s, not the installed raftguard", argv[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bin := lc.bin
	if s.bin != "" {
		bin = s.bin // the node's own installed binary (runbook upgrades)
	}
	cmd := s.host.Command(ctx, bin, argv[1:]...)
	cmd.Env = append(os.Environ(), "RAFTGUARD_DATA_DIR="+s.dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// holdsVIP reports whether the server's NIC holds the IPv4 or the IPv6 VIP,
// whatever its process does.
func holdsVIP(s *labServer) (bool, error) {
	ps, err := s.host.Addrs()
	if err != nil {
		return false, err
	}
	for _, p := range ps {
		if p.Addr() == vip4.Addr() || p.Addr() == vip6.Addr() {
			return true, nil
		}
	}
	return false, nil
}

// wgLink describes the server's WireGuard link: whether it exists, is
// administratively up, and its byte counters. The kernel module counts as
// received what it decrypted or accepted from a peer, and as sent what
// passed the output hook (a packet the source fence drops counts as a
// dropped transmission, not as bytes).
type wgLink struct {
	exists, up bool
	rx, tx     uint64
}

func readWGLink(s *labServer) (wgLink, error) {
	out, err := s.host.Run(context.Background(), "ip", "-j", "-s", "link", "show", "dev", s.wg)
	if err != nil {
		if strings.Contains(out, "does not exist") {
			return wgLink{}, nil
		}
		return wgLink{}, err
	}
	var links []struct {
		Flags []string `json:"flags"`
		Stats struct {
			RX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
			TX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &links); err != nil || len(links) != 1 {
		return wgLink{}, fmt.Errorf("ip -j -s link show %s: %v: %s", s.wg, err, out)
	}
	l := links[0]
	up := false
	for _, f := range l.Flags {
		up = up || f == "UP"
	}
	return wgLink{exists: true, up: up, rx: l.Stats.RX.Bytes, tx: l.Stats.TX.Bytes}, nil
}

// servesNothing checks that a server that is no longer leader (or whose
// process was killed or stopped) holds no VIP and has no WireGuard
// interface that serves clients: the link is gone, or down, or holds no
// peers, or at least its counters do not move over a second (longer under
// load; the failure names the window and the direction) while the client
// pings through the tunnel. It reads the link through netlink and `wg
// show` (the UAPI socket or the kernel), so it holds for both data planes;
// a stopped userspace process cannot answer `wg show`, and is judged by its
// counters.
func (lc *labCluster) servesNothing(s *labServer) error {
	if held, err := holdsVIP(s); err != nil {
		return err
	} else if held {
		return fmt.Errorf("%s still holds a VIP", s.id)
	}
	start := time.Now()
	l, err := readWGLink(s)
	if err != nil {
		return err
	}
	if !l.exists || !l.up {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	out, err := s.host.Run(ctx, "wg", "show", s.wg, "peers")
	cancel()
	if err == nil && strings.TrimSpace(out) == "" {
		return nil
	}
	p, perr := lc.client.StartPinger(tunnelServer4, 20*time.Millisecond)
	if perr == nil {
		defer p.Stop()
	}
	time.Sleep(time.Second) // the window in which the counters must not move
	l2, err := readWGLink(s)
	if err != nil {
		return err
	}
	window := time.Since(start) // longer than the second under load
	if l2.exists && l2.up && (l2.rx != l.rx || l2.tx != l.tx) {
		// What moved, for the failure message: both ends' view.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv, _ := s.host.Run(ctx, "wg", "show", s.wg, "dump")
		stats, _ := s.host.Run(ctx, "ip", "-s", "-s", "link", "show", "dev", s.wg)
		cl, _ := lc.client.Run(ctx, "wg", "show", "all", "dump")
		return fmt.Errorf("%s's WireGuard interface is up, has peers and passed traffic in %v: received %d bytes (%d -> %d), sent %d bytes (%d -> %d)\n%s: %s\n%s\nclient: %s",
			s.id, window.Round(time.Millisecond), l2.rx-l.rx, l.rx, l2.rx, l2.tx-l.tx, l.tx, l2.tx, s.id, redactDump(srv), stats, redactDump(cl))
	}
	return nil
}

// waitVIPGone polls the server's NIC every 10ms until it holds neither VIP
// and returns how long after since that was.
func waitVIPGone(t testing.TB, s *labServer, since time.Time, d time.Duration) time.Duration {
	t.Helper()
	pollFast(t, d, func() error {
		if held, err := holdsVIP(s); err != nil || held {
			return fmt.Errorf("%s still holds a VIP (%v)", s.id, err)
		}
		return nil
	})
	return time.Since(since)
}

// watchVIPGone starts polling the server's NIC every 10ms now, in the
// background, and returns a function that waits (up to d from now) until
// the poller saw neither VIP and returns how long after since that was
// first seen. Start it at the fault, so that whatever the test waits for
// in between (a new leader, the client's outage) does not count as time
// the NIC held the VIP.
func watchVIPGone(t testing.TB, s *labServer, since time.Time, d time.Duration) func() time.Duration {
	type result struct {
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	deadline := time.Now().Add(scaled(d))
	go func() {
		for {
			held, err := holdsVIP(s)
			if err == nil && !held {
				done <- result{at: time.Now()}
				return
			}
			if time.Now().After(deadline) {
				done <- result{err: fmt.Errorf("%s still holds a VIP %v after the fault (%v)", s.id, time.Since(since).Round(time.Millisecond), err)}
				return
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}()
	return func() time.Duration {
		t.Helper()
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.at.Sub(since)
	}
}

// fenceRounds is how many kills and stops TestFenceDeadLeader measures
// (RAFTGUARD_FENCE_ROUNDS, default 2 each).
func fenceRounds() int {
	if n, err := strconv.Atoi(os.Getenv("RAFTGUARD_FENCE_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 2
}

// waitPings waits until the client's pings through the tunnel get three
// answers.
func (lc *labCluster) waitPings() {
	lc.t.Helper()
	p, err := lc.client.StartPinger(tunnelServer4, 50*time.Millisecond)
	if err != nil {
		lc.t.Fatal(err)
	}
	if err := p.WaitReplies(3, 15*time.Second); err != nil {
		lc.t.Fatalf("no ping through the tunnel: %v", err)
	}
	p.Stop()
}

// TestFenceDeadLeader: the leader's process is killed (SIGKILL) or frozen
// (SIGSTOP); nobody cleans up after it. The kernel removes its VIPs by
// itself within fenceLimit (the lease is no longer renewed), a new leader
// serves the client, and the old leader serves nothing. A sampler counting
// every NIC (dead and frozen processes' too) never sees two holders for
// longer than fenceLimit.
func TestFenceDeadLeader(t *testing.T) {
	lc := newLabCluster(t, 3)
	lc.addClient(lc.servers[1], "fence")
	lc.waitPings()
	// The leader records the client's endpoint, so that each new leader
	// greets the client at once.
	poll(t, 10*time.Second, func() error {
		out, err := lc.cli(lc.servers[1], "-o", "json", "peer", "show", "fence")
		if err != nil || !strings.Contains(out, `"endpoint": "192.0.2.50:`) {
			return fmt.Errorf("endpoint not recorded yet: %v %s", err, out)
		}
		return nil
	})
	sampler := lc.startSampler()
	figures := map[syscall.Signal][]time.Duration{}
	for round := range fenceRounds() {
		for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP} {
			old := lc.leader()
			fault := time.Now()
			if err := old.proc.Signal(sig); err != nil {
				t.Fatal(err)
			}
			gone := waitVIPGone(t, old, fault, 2*fenceLimit)
			figures[sig] = append(figures[sig], gone)
			t.Logf("round %d: %v of leader %s: its VIPs gone after %v", round+1, sig, old.id, gone.Round(time.Millisecond))
			if gone > fenceLimit {
				t.Errorf("%v of the leader: its VIPs were still on its NIC %v after the fault, want at most %v", sig, gone, fenceLimit)
			}
			rest := lc.others(old)
			// The others elect a new leader (their Raft timeouts, not
			// the VIP's lifetime, decide when).
			poll(t, 15*time.Second, func() error {
				if nl := lc.leader(rest...); nl == old {
					return fmt.Errorf("the others still name %s as leader", old.id)
				}
				return nil
			})
			p, err := lc.client.StartPinger(tunnelServer4, 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WaitReplies(3, 15*time.Second); err != nil {
				t.Fatalf("the client gets no answer after the %v failover: %v", sig, err)
			}
			p.Stop()
			if err := lc.servesNothing(old); err != nil {
				t.Errorf("after %v: %v", sig, err)
			}
			// Back as a follower: a frozen process resumes (and must not
			// claim the VIP in its stale term), a killed one restarts.
			if sig == syscall.SIGSTOP {
				if err := old.proc.Signal(syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			} else {
				<-old.proc.Done()
				lc.start(old)
			}
			st := lc.waitHealthy(3)
			if st.LeaderID == old.id {
				t.Errorf("%s leads again after %v", old.id, sig)
			}
		}
	}
	longest, samples := sampler.Stop()
	t.Logf("VIP sampler (every NIC): %d samples, longest double holding %v", samples, longest)
	if longest > fenceLimit {
		t.Errorf("two NICs held the VIP at once for %v, want at most %v after a fault", longest, fenceLimit)
	}
	for sig, what := range map[syscall.Signal]string{syscall.SIGKILL: "kill -9", syscall.SIGSTOP: "SIGSTOP"} {
		if xs := figures[sig]; len(xs) > 0 {
			fmt.Printf("FIGURE fencing: VIP gone from the leader's NIC after %s of its process: %s (%d runs)\n", what, durs(xs), len(xs))
		}
	}
}

// TestCleanupAfterKill: after kill -9 of the leader, the unit's
// ExecStopPost command line (run exactly as systemd runs it after a
// SIGKILL) leaves no VIP and no WireGuard link in the node's namespace;
// run again it finds nothing and exits 0. The node then starts cleanly.
func TestCleanupAfterKill(t *testing.T) {
	lc := newLabCluster(t, 3)
	leader := lc.leader()
	kill(t, leader, syscall.SIGKILL)
	// At once, before the VIP's lifetime runs out: cleanup removes it.
	out, err := lc.execStopPost(leader)
	t.Logf("ExecStopPost: %s", strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("ExecStopPost after kill -9: %v\n%s", err, out)
	}
	if held, err := holdsVIP(leader); err != nil || held {
		t.Errorf("after ExecStopPost the node still holds a VIP (%v)", err)
	}
	if l, err := readWGLink(leader); err != nil || l.exists {
		t.Errorf("after ExecStopPost the WireGuard link %s is still there (%+v, %v)", leader.wg, l, err)
	}
	if out, err := leader.host.Run(context.Background(), "ip", "-o", "link", "show", "type", "wireguard"); err == nil && strings.TrimSpace(out) != "" {
		t.Errorf("a WireGuard link remains: %s", out)
	}
	if _, err := os.Stat("/var/run/wireguard/" + leader.wg + ".sock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket of %s remains (%v)", leader.wg, err)
	}
	out, err = lc.execStopPost(leader)
	if err != nil || !strings.Contains(out, "nothing left") {
		t.Errorf("second ExecStopPost: %v\n%s", err, out)
	}
	// While the node runs, cleanup refuses to touch its data plane.
	lc.start(leader)
	lc.waitHealthy(3)
	if out, err := lc.execStopPost(leader); err == nil {
		t.Errorf("cleanup ran on the data dir of a running node:\n%s", out)
	}
}

// TestCrashedLeaderForgetsDeletedPeer: a peer deleted after the leader's
// crash passes no traffic through any node: not the new leader, and not
// the crashed node, whose interface the unit's ExecStopPost removed.
func TestCrashedLeaderForgetsDeletedPeer(t *testing.T) {
	lc := newLabCluster(t, 3)
	old := lc.leader()
	via := lc.others(old)[0]
	wc := lc.addClient(via, "gone")
	lc.waitPings()
	out, err := lc.cli(via, "-o", "json", "peer", "show", "gone")
	if err != nil {
		t.Fatalf("peer show: %v\n%s", err, out)
	}
	var peer struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal([]byte(out), &peer); err != nil || peer.PublicKey == "" {
		t.Fatalf("peer show: %v\n%s", err, out)
	}
	key := peer.PublicKey
	checkEndpoint(t, wc, vip4.Addr(), "before the crash")

	kill(t, old, syscall.SIGKILL)
	if out, err := lc.execStopPost(old); err != nil {
		t.Fatalf("ExecStopPost: %v\n%s", err, out)
	}
	rest := lc.others(old)
	lc.leader(rest...)
	if out, err := lc.cli(via, "peer", "rm", "gone"); err != nil {
		t.Fatalf("peer rm: %v\n%s", err, out)
	}
	for _, s := range lc.servers {
		poll(t, 10*time.Second, func() error {
			out, err := s.host.Run(context.Background(), "wg", "show", s.wg, "peers")
			if err != nil && s != old {
				return fmt.Errorf("%s: wg show: %v %s", s.id, err, out)
			}
			if strings.Contains(out, key) {
				return fmt.Errorf("%s: the deleted peer is still on an interface", s.id)
			}
			return nil
		})
	}
	if l, err := readWGLink(old); err != nil || l.exists {
		t.Errorf("the crashed node keeps its WireGuard link (%+v, %v)", l, err)
	}
	// The client keeps trying (its own handshake retries); no node answers.
	p, err := lc.client.StartPinger(tunnelServer4, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the window in which nothing may answer
	if r := p.Stop(); r.Received > 0 {
		t.Errorf("the deleted peer got %d replies through the tunnel after the crash", r.Received)
	}
	for _, s := range rest {
		if err := lc.servesNothingTo(s, key); err != nil {
			t.Error(err)
		}
	}
}

// servesNothingTo checks that the server's WireGuard interface does not
// know the peer's public key. (Not `wg show all`: it also lists the
// userspace interfaces of other namespaces, the client's among them.)
func (lc *labCluster) servesNothingTo(s *labServer, key string) error {
	out, err := s.host.Run(context.Background(), "wg", "show", s.wg, "dump")
	if err != nil {
		return fmt.Errorf("%s: wg show: %v", s.id, err)
	}
	if strings.Contains(out, key) {
		return fmt.Errorf("%s: an interface still holds the deleted peer", s.id)
	}
	return nil
}

// redactDump keeps `wg show dump` output readable in a failure message
// without secrets: the private key of an interface line (4 fields, 5 with
// `all`) and the preshared key of a peer line (8 fields, 9 with `all`) are
// replaced.
func redactDump(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		switch len(f) {
		case 4:
			f[0] = "(private key)"
		case 5:
			f[1] = "(private key)"
		case 8:
			f[1] = "(preshared key)"
		case 9:
			f[2] = "(preshared key)"
		}
		b.WriteString(strings.Join(f, " ") + "\n")
	}
	return b.String()
}
