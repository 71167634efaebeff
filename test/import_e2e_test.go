package test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/netlab"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// TestBootstrapImportTakesOverServer runs section 9 of the runbook: a plain
// wireguard-go server with a wg-quick config, at 192.0.2.10, serves a
// client; it is switched off, a three-node cluster is bootstrapped from the
// same config with --import and the old server's address as its VIP, and
// the client, untouched (same config, same server public key), pings the
// server's tunnel address through the VIP, served by the leader; after a
// kill -9 of the leader it does again, served by the new leader. After the
// rollback the old server serves the client again.
func TestBootstrapImportTakesOverServer(t *testing.T) {
	needLab(t)
	lc := newLab(t, "rgim")
	for i := 1; i <= 3; i++ {
		h, err := lc.lab.AddHost(fmt.Sprintf("s%d", i),
			netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i)),
			netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", i)))
		if err != nil {
			t.Fatal(err)
		}
		lc.servers = append(lc.servers, &labServer{
			id: fmt.Sprintf("s%d", i), host: h, dir: filepath.Join(t.TempDir(), "data"), wg: lc.lab.Name("rgwg"),
		})
	}
	// The old server's only address is the one that becomes the VIP.
	oldHost, err := lc.lab.AddHost("old", vip4, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	if lc.client, err = lc.lab.AddHost("c1", client, netip.Prefix{}); err != nil {
		t.Fatal(err)
	}

	serverConf, clientConf, clientPub := importConfigs(t)
	rb := newRunbook(t, lc)
	oldWG, err := oldHost.StartWireGuardClient(lc.lab.Name("rgold"), serverConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oldWG.Close() })
	wc, err := lc.client.StartWireGuardClient(lc.lab.Name("rgcl"), clientConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	pingThrough(t, lc.client, "the old server")
	checkEndpoint(t, wc, vip4.Addr(), "old server")

	// Switch the old server off: its interface and its LAN link.
	if err := oldWG.Close(); err != nil {
		t.Fatal(err)
	}
	if err := oldHost.LinkDown(); err != nil {
		t.Fatal(err)
	}

	// Steps 1 to 4: the config copied to the first node, the bootstrap
	// from it, two more nodes.
	s1 := lc.servers[0]
	if err := os.WriteFile(filepath.Join(rb.root(s1), "etc/wireguard/wg0.conf"), []byte(serverConf), 0o600); err != nil {
		t.Fatal(err)
	}
	rb.set("NODE", s1.id)
	rb.set("VIP", vip4.String())
	rb.run("migrate/bootstrap", and(healthy(1), leaderIs(s1.id)))
	addNode(rb, lc, lc.servers[1], 2)
	addNode(rb, lc, lc.servers[2], 3)
	out := rb.run("migrate/check", healthy(3))
	if list := out[1]; !strings.Contains(list, "laptop") || !strings.Contains(list, "phone") {
		t.Fatalf("peer list:\n%s", list)
	}
	leader := lc.leader()

	// The untouched client reaches the server's tunnel address through the
	// VIP, and the leader is the node that served it.
	start := time.Now()
	pingThrough(t, lc.client, "the cluster")
	t.Logf("the client got through to the cluster %v after its first ping", time.Since(start).Round(time.Millisecond))
	checkEndpoint(t, wc, vip4.Addr(), "after the takeover")
	lc.checkServedBy(leader, clientPub, time.Time{})

	// The leader records the client's endpoint (once a second), so that the
	// next leader greets the client at once.
	poll(t, 10*time.Second, func() error {
		out, err := lc.cli(leader, "-o", "json", "peer", "show", "laptop")
		if err != nil || !strings.Contains(out, `"endpoint": "`+lc.client.IPv4().Addr().String()+`:`) {
			return fmt.Errorf("the laptop's endpoint is not recorded yet: %v %s", err, out)
		}
		return nil
	})

	// kill -9 of the leader: the client works again, through the new leader.
	killed := time.Now()
	gap := outage(t, lc, tunnelServer4, func() { kill(t, leader, syscall.SIGKILL) })
	t.Logf("client outage across kill -9 of %s: %v", leader.id, gap.Round(time.Millisecond))
	if gap > scaled(5*time.Second) {
		t.Errorf("outage after SIGKILL of the leader: %v, want at most %v", gap, scaled(5*time.Second))
	}
	newLeader := lc.leader(lc.others(leader)...)
	if newLeader == leader {
		t.Fatalf("%s still leads after its kill", leader.id)
	}
	pingThrough(t, lc.client, "the cluster after the failover")
	checkEndpoint(t, wc, vip4.Addr(), "after the failover")
	lc.checkServedBy(newLeader, clientPub, killed)

	// systemd starts the killed node again; step 6.
	lc.start(leader)
	lc.waitHealthy(3)
	rb.set("NODE", s1.id)
	rb.run("migrate/finish", nil)

	// Rollback: raftguard stopped on every node, the old server back.
	for _, s := range lc.servers {
		rb.set("NODE", s.id)
		rb.run("migrate/rollback", nil)
	}
	if h := lc.vipHolders(); len(h) != 0 {
		t.Fatalf("after the rollback %v still hold the VIP", h)
	}
	if err := oldHost.LinkUp(); err != nil {
		t.Fatal(err)
	}
	back, err := oldHost.StartWireGuardClient(lc.lab.Name("rgold"), serverConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	start = time.Now()
	pingThrough(t, lc.client, "the old server after the rollback")
	t.Logf("the client got through to the old server %v after its first ping", time.Since(start).Round(time.Millisecond))
	checkEndpoint(t, wc, vip4.Addr(), "after the rollback")
}

// importConfigs returns a wg-quick server config (tunnel address
// 198.51.100.1/24, port 51820) with two named peers, the config of the
// first peer's client (endpoint the VIP) and that client's public key.
func importConfigs(t *testing.T) (server, clientConf, clientPub string) {
	t.Helper()
	var keys [3]wgkey.Pair
	for i := range keys {
		var err error
		if keys[i], err = wgkey.Generate(); err != nil {
			t.Fatal(err)
		}
	}
	psk, err := wgkey.Preshared()
	if err != nil {
		t.Fatal(err)
	}
	srv, cl, phone := keys[0], keys[1], keys[2]
	server = fmt.Sprintf(`[Interface]
PrivateKey = %s
ListenPort = 51820
Address = %s/24
MTU = 1420

# Client: laptop (8d1e0c2a)
[Peer]
PublicKey = %s
PresharedKey = %s
AllowedIPs = %s

### Client phone
[Peer]
PublicKey = %s
AllowedIPs = 198.51.100.3/32
`, srv.Private, tunnelServer4, cl.Public, psk, tunnelClient4, phone.Public)
	return server, plainClientConf(cl.Private, srv.Public, psk, vip4.Addr()), cl.Public
}

// pingThrough waits until the client host gets replies from the server's
// tunnel address. A client whose session belongs to a server that is gone
// starts a new handshake by itself within about 15 s (WireGuard's
// keepalive and rekey timeouts).
func pingThrough(t *testing.T, h *netlab.Host, what string) {
	t.Helper()
	p, err := h.StartPinger(tunnelServer4, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.WaitReplies(3, scaled(40*time.Second)); err != nil {
		t.Fatalf("no ping through %s: %v", what, err)
	}
}

// checkServedBy asserts that the leader's interface had a handshake with
// the client's key (at or after since, in whole seconds), and that no
// other running node's had one since then.
func (lc *labCluster) checkServedBy(leader *labServer, clientPub string, since time.Time) {
	lc.t.Helper()
	hs := func(s *labServer) (time.Time, error) {
		out, err := s.host.Run(context.Background(), "wg", "show", s.wg, "latest-handshakes")
		if err != nil {
			return time.Time{}, err
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if k, v, ok := strings.Cut(line, "\t"); ok && k == clientPub {
				sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil || sec == 0 {
					return time.Time{}, err
				}
				return time.Unix(sec, 0), nil
			}
		}
		return time.Time{}, fmt.Errorf("no peer with the client's key on %s", s.wg)
	}
	// Handshake times are in whole seconds.
	floor := since.Truncate(time.Second)
	at, err := hs(leader)
	if err != nil || at.IsZero() || at.Before(floor) {
		lc.t.Fatalf("leader %s: latest handshake with the client %v (%v), want one after %v", leader.id, at, err, floor)
	}
	lc.t.Logf("leader %s: handshake with the client at %v", leader.id, at.Format(time.TimeOnly))
	for _, s := range lc.others(leader) {
		if s.proc == nil || s.proc.Exited() {
			continue
		}
		if at, err := hs(s); err == nil && !at.IsZero() && !at.Before(floor) {
			lc.t.Errorf("follower %s had a handshake with the client at %v", s.id, at)
		}
	}
}
