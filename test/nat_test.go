package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/netlab"
)

// internetAddr is the "internet" host's address: behind the lab's router
// (192.0.2.99), outside every tunnel pool, and with no route back to them.
var internetAddr = netip.MustParseAddr("203.0.113.1")

// addInternet plugs a router host into the lab that holds internetAddr and
// knows no route to the pools, and gives every server a default route
// through it (so the NAT interface is found as the default route's).
func (lc *labCluster) addInternet() *netlab.Host {
	lc.t.Helper()
	h, err := lc.lab.AddHost("inet", netip.MustParsePrefix("192.0.2.99/24"), netip.Prefix{})
	if err != nil {
		lc.t.Fatal(err)
	}
	ctx := context.Background()
	if out, err := h.Run(ctx, "ip", "addr", "add", internetAddr.String()+"/32", "dev", "lo"); err != nil {
		lc.t.Fatalf("%v: %s", err, out)
	}
	for _, s := range lc.servers {
		if out, err := s.host.Run(ctx, "ip", "route", "replace", "default", "via", "192.0.2.99"); err != nil {
			lc.t.Fatalf("%v: %s", err, out)
		}
	}
	return h
}

// natTable reports whether the server's namespace holds the NAT table.
func natTable(s *labServer) bool {
	_, err := s.host.Run(context.Background(), "nft", "list", "table", "inet", "raftguard")
	return err == nil
}

// reachesInternet pings the internet host from the client, once.
func (lc *labCluster) reachesInternet() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := lc.client.Run(ctx, "ping", "-c", "1", "-W", "1", internetAddr.String())
	if err != nil {
		return fmt.Errorf("ping %s: %v (%s)", internetAddr, err, strings.TrimSpace(out))
	}
	return nil
}

// checkNATHolders fails unless exactly the leader holds the NAT table
// (among running servers).
func (lc *labCluster) checkNATHolders(leader *labServer) {
	lc.t.Helper()
	want := "none"
	if leader != nil {
		want = leader.id
	}
	poll(lc.t, 10*time.Second, func() error {
		for _, s := range lc.servers {
			if s.proc == nil || s.proc.Exited() {
				continue
			}
			if has := natTable(s); has != (s == leader) {
				return fmt.Errorf("%s holds the NAT table: %v (want it on %s)", s.id, has, want)
			}
		}
		return nil
	})
}

// echoServer answers each line with the same line, on every connection.
func echoServer(t *testing.T, ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

// echo sends one line and waits for it to come back.
func echo(c net.Conn, r *bufio.Reader, line string, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintln(c, line); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != line {
		return fmt.Errorf("echo: got %q", got)
	}
	return nil
}

// TestNATFollowsLeader: a client whose config routes everything reaches a
// host that has no route back to the pools only when NAT is on; the NAT
// table sits on the leader alone, and follows it across a kill -9 and a
// transfer of leadership; a restarted node removes the table its killed
// process left behind. It also measures what a NATed TCP connection does
// across a failover (the connection tracking state is the old leader's).
func TestNATFollowsLeader(t *testing.T) {
	lc := newLabCluster(t, 3)
	inet := lc.addInternet()
	leader := lc.leader()
	lc.addClient(leader, "roadwarrior")
	poll(t, 15*time.Second, lc.pingsServer)

	// NAT off (the default): the tunnel works, the internet does not answer.
	if err := lc.reachesInternet(); err == nil {
		t.Fatal("the client reached the internet host with NAT off")
	}
	lc.checkNATHolders(nil)

	if out, err := lc.cli(leader, "cluster", "settings", "set", "--nat=true"); err != nil || !strings.Contains(out, "NAT:") {
		t.Fatalf("settings set --nat=true: %v\n%s", err, out)
	}
	start := time.Now()
	poll(t, 15*time.Second, lc.reachesInternet)
	t.Logf("NAT on: the internet host answers %v after the settings change", time.Since(start).Round(time.Millisecond))
	lc.checkNATHolders(leader)

	// A NATed TCP connection, open across the failover.
	ln, err := inet.Listen("tcp4", net.JoinHostPort(internetAddr.String(), "8080"))
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)
	dial := func() (net.Conn, *bufio.Reader, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := lc.client.DialContext(ctx, "tcp4", net.JoinHostPort(internetAddr.String(), "8080"))
		if err != nil {
			return nil, nil, err
		}
		return c, bufio.NewReader(c), nil
	}
	old, oldR, err := dial()
	if err != nil {
		t.Fatalf("TCP through NAT: %v", err)
	}
	defer old.Close()
	if err := echo(old, oldR, "before", 5*time.Second); err != nil {
		t.Fatalf("TCP through NAT: %v", err)
	}

	// kill -9 the leader: new connections work again once a new leader
	// serves.
	gap := outage(t, lc, internetAddr, func() { kill(t, leader, syscall.SIGKILL) })
	t.Logf("kill -9 of the leader: longest gap in pings to the internet host %v", gap)
	if err := lc.reachesInternet(); err != nil {
		t.Fatalf("after kill -9: %v", err)
	}
	survivors := []*labServer{}
	for _, s := range lc.servers {
		if s != leader {
			survivors = append(survivors, s)
		}
	}
	newLeader := lc.leader(survivors...)
	lc.checkNATHolders(newLeader)
	c, r, err := dial()
	if err != nil {
		t.Fatalf("new TCP connection after kill -9: %v", err)
	}
	if err := echo(c, r, "new", 5*time.Second); err != nil {
		t.Fatalf("new TCP connection after kill -9: %v", err)
	}
	c.Close()
	// The existing connection: its NAT mapping lived in the old leader's
	// connection tracking table.
	oldErr := echo(old, oldR, "after", 10*time.Second)
	switch {
	case oldErr == nil:
		t.Logf("existing NATed TCP connection across kill -9: survived")
	case errors.Is(oldErr, syscall.ECONNRESET):
		t.Logf("existing NATed TCP connection across kill -9: reset (%v)", oldErr)
	default:
		t.Logf("existing NATed TCP connection across kill -9: broken (%v)", oldErr)
	}

	// The killed node's table outlived its process; starting it again
	// removes it before Raft starts, and it stays a follower without it.
	if !natTable(leader) {
		t.Logf("the killed leader's namespace holds no NAT table")
	}
	lc.start(leader)
	lc.waitHealthy(3)
	lc.checkNATHolders(newLeader)

	// A planned transfer: the table moves with the leadership.
	if out, err := lc.cli(newLeader, "cluster", "transfer-leader"); err != nil {
		t.Fatalf("transfer-leader: %v\n%s", err, out)
	}
	third := lc.leader()
	if third == newLeader {
		t.Fatal("leadership did not move")
	}
	lc.checkNATHolders(third)
	poll(t, 15*time.Second, lc.reachesInternet)

	// NAT off again: the table goes, the internet stops answering.
	if out, err := lc.cli(third, "cluster", "settings", "set", "--nat=false"); err != nil {
		t.Fatalf("settings set --nat=false: %v\n%s", err, out)
	}
	lc.checkNATHolders(nil)
	if err := lc.reachesInternet(); err == nil {
		t.Fatal("the client reached the internet host after NAT was turned off")
	}
}
