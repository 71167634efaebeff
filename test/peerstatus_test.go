package test

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/httpapi"
)

// peerFrom reads a peer from one node's replica.
func (lc *labCluster) peerFrom(s *labServer, name string) (httpapi.PeerView, error) {
	var p httpapi.PeerView
	out, err := lc.cli(s, "-o", "json", "peer", "show", name)
	if err != nil {
		return p, fmt.Errorf("%s: %v: %s", s.id, err, out)
	}
	return p, json.Unmarshal([]byte(out), &p)
}

// sameStatusEverywhere waits until every running node answers the same
// status for the peer, and ok accepts it; it fails when a read goes below
// floor (handshake or traffic going backwards).
func (lc *labCluster) sameStatusEverywhere(name string, floor httpapi.PeerView, ok func(httpapi.PeerView) error) httpapi.PeerView {
	lc.t.Helper()
	var got httpapi.PeerView
	poll(lc.t, 30*time.Second, func() error {
		var first *httpapi.PeerView
		for _, s := range lc.servers {
			if s.proc == nil || s.proc.Exited() {
				continue
			}
			p, err := lc.peerFrom(s, name)
			if err != nil {
				return err
			}
			if p.RxBytes < floor.RxBytes || p.TxBytes < floor.TxBytes ||
				floor.LatestHandshake != nil && (p.LatestHandshake == nil || p.LatestHandshake.Before(*floor.LatestHandshake)) {
				lc.t.Fatalf("%s: status went backwards: rx %d tx %d handshake %v, was rx %d tx %d handshake %v",
					s.id, p.RxBytes, p.TxBytes, p.LatestHandshake, floor.RxBytes, floor.TxBytes, floor.LatestHandshake)
			}
			if first == nil {
				first = &p
				continue
			}
			if p.Endpoint != first.Endpoint || p.RxBytes != first.RxBytes || p.TxBytes != first.TxBytes ||
				fmt.Sprint(p.LatestHandshake) != fmt.Sprint(first.LatestHandshake) || p.Online != first.Online {
				return fmt.Errorf("%s answers %s rx %d tx %d, another node %s rx %d tx %d", s.id, p.Endpoint, p.RxBytes, p.TxBytes, first.Endpoint, first.RxBytes, first.TxBytes)
			}
		}
		if first == nil {
			return fmt.Errorf("no node answered")
		}
		got = *first
		return ok(got)
	})
	return got
}

func (lc *labCluster) pingTunnel(count int) {
	lc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := lc.client.Run(ctx, "ping", "-c", fmt.Sprint(count), "-i", "0.05", "-s", "1000", "198.51.100.1"); err != nil {
		lc.t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
}

// TestPeerStatusAcrossFailover: the endpoint, latest handshake and traffic
// of a peer are the same from every node, and after a kill -9 of the
// leader the traffic totals go on from where they were (the new leader
// adds its own counters on top) and the handshake does not go backwards.
func TestPeerStatusAcrossFailover(t *testing.T) {
	lc := newLabCluster(t, 3)
	leader := lc.leader()
	lc.addClient(leader, "laptop")
	poll(t, 15*time.Second, lc.pingsServer)
	lc.pingTunnel(40)
	before := lc.sameStatusEverywhere("laptop", httpapi.PeerView{}, func(p httpapi.PeerView) error {
		if p.Endpoint == "" || p.LatestHandshake == nil || !p.Online || p.RxBytes < 40*1000 || p.TxBytes < 40*1000 {
			return fmt.Errorf("status not recorded yet: endpoint %q handshake %v online %v rx %d tx %d", p.Endpoint, p.LatestHandshake, p.Online, p.RxBytes, p.TxBytes)
		}
		return nil
	})
	t.Logf("before: endpoint %s handshake %v rx %d tx %d online %v", before.Endpoint, before.LatestHandshake, before.RxBytes, before.TxBytes, before.Online)

	kill(t, leader, syscall.SIGKILL)
	survivors := lc.others(leader)
	lc.leader(survivors...)
	poll(t, 30*time.Second, lc.pingsServer)
	lc.pingTunnel(40)
	after := lc.sameStatusEverywhere("laptop", before, func(p httpapi.PeerView) error {
		// The new leader's own 40 pings of 1 kB each way come on top.
		if p.RxBytes < before.RxBytes+40*1000 || p.TxBytes < before.TxBytes+40*1000 || !p.LatestHandshake.After(*before.LatestHandshake) || !p.Online {
			return fmt.Errorf("new leader's status not recorded yet: handshake %v rx %d tx %d", p.LatestHandshake, p.RxBytes, p.TxBytes)
		}
		return nil
	})
	t.Logf("after kill -9: endpoint %s handshake %v rx %d tx %d online %v", after.Endpoint, after.LatestHandshake, after.RxBytes, after.TxBytes, after.Online)
}
