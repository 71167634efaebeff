package test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pingsServer sends the client's one ping to the server's address behind
// the tunnel and reports whether it got an answer within a second.
func (lc *labCluster) pingsServer() error {
	// (Starting a process in a namespace takes seconds on an emulated CPU.)
	ctx, cancel := context.WithTimeout(context.Background(), scaled(3*time.Second))
	defer cancel()
	_, err := lc.client.Run(ctx, "ping", "-c", "1", "-W", "2", "198.51.100.1")
	return err
}

// TestPeerExpiryAcrossFailover: a peer expires while the leader is killed
// (kill -9 half a second before the expiry); the new leader disables it
// through the log, every node shows it expired, its client gets no answer,
// enabling it needs a new expiry (or never), and then it works again.
func TestPeerExpiryAcrossFailover(t *testing.T) {
	lc := newLabCluster(t, 3)
	leader := lc.leader()
	lc.addClient(leader, "contractor")
	poll(t, 15*time.Second, lc.pingsServer)
	// The expiry is set once the client works, so that a slow setup (an
	// emulated CPU) does not eat into the time before it.
	exp := time.Now().Add(scaled(10 * time.Second)).Truncate(time.Second)
	if out, err := lc.cli(leader, "peer", "set", "contractor", "--expires", exp.UTC().Format(time.RFC3339)); err != nil {
		t.Fatalf("peer set --expires: %v\n%s", err, out)
	}
	if p, err := lc.peerFrom(leader, "contractor"); err != nil || p.ExpiresAt == nil || !p.ExpiresAt.Equal(exp) || p.Expired {
		t.Fatalf("peer before the expiry: %+v, %v", p, err)
	}

	select {
	case <-time.After(time.Until(exp.Add(-500 * time.Millisecond))): // the fault's moment, not a condition
	case <-t.Context().Done():
		return
	}
	kill(t, leader, syscall.SIGKILL)
	survivors := lc.others(leader)
	poll(t, 30*time.Second, func() error {
		for _, s := range survivors {
			p, err := lc.peerFrom(s, "contractor")
			if err != nil {
				return err
			}
			if !p.Expired || p.Enabled {
				return fmt.Errorf("%s: expired %v enabled %v", s.id, p.Expired, p.Enabled)
			}
		}
		return nil
	})
	t.Logf("expired on every surviving node %v after the expiry time", time.Since(exp).Round(time.Millisecond))
	// The client gets no answer any more, from the new leader either.
	poll(t, 15*time.Second, func() error {
		if lc.pingsServer() == nil {
			return fmt.Errorf("the expired peer's client still gets answers")
		}
		return nil
	})
	if lc.pingsServer() == nil {
		t.Fatal("the expired peer's client got an answer again")
	}

	// Enabling needs a new expiry (or never).
	s := survivors[0]
	if out, err := lc.cli(s, "peer", "enable", "contractor"); err == nil || !strings.Contains(out, "expired") {
		t.Fatalf("enable of an expired peer without a new expiry: %v\n%s", err, out)
	}
	if out, err := lc.cli(s, "peer", "set", "contractor", "--expires", "never"); err != nil {
		t.Fatalf("peer set --expires never: %v\n%s", err, out)
	}
	if out, err := lc.cli(s, "peer", "enable", "contractor"); err != nil {
		t.Fatalf("peer enable: %v\n%s", err, out)
	}
	poll(t, 30*time.Second, lc.pingsServer)
	if p, err := lc.peerFrom(s, "contractor"); err != nil || p.Expired || !p.Enabled || p.ExpiresAt != nil {
		t.Fatalf("peer after re-enabling: %+v, %v", p, err)
	}
}
