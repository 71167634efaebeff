package fsm

import (
	"errors"
	"testing"
	"time"
)

// TestPeerStatusNeverGoesBackwards: handshake times and traffic totals
// keep the larger value; an empty endpoint keeps the recorded one; a bad
// endpoint rejects the whole command.
func TestPeerStatusNeverGoesBackwards(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	if _, err := h.addPeer("a", seqKey(1)); err != nil {
		t.Fatal(err)
	}
	h.mustOK(CmdSetPeerStatus, SetPeerStatus{At: t0, Updates: []PeerStatusUpdate{
		{Name: "a", Endpoint: "198.51.100.1:1000", LastHandshake: t0.Add(time.Hour), RxBytes: 100, TxBytes: 200},
		{Name: "gone", Endpoint: "198.51.100.2:1000"},
	}})
	h.mustOK(CmdSetPeerStatus, SetPeerStatus{At: t0, Updates: []PeerStatusUpdate{
		{Name: "a", LastHandshake: t0, RxBytes: 50, TxBytes: 300},
	}})
	p, _ := h.f.Peer("a")
	if p.Endpoint != "198.51.100.1:1000" || !p.LastHandshake.Equal(t0.Add(time.Hour)) || p.RxBytes != 100 || p.TxBytes != 300 {
		t.Fatalf("peer status %q %v %d %d", p.Endpoint, p.LastHandshake, p.RxBytes, p.TxBytes)
	}
	res := h.apply(CmdSetPeerStatus, SetPeerStatus{At: t0, Updates: []PeerStatusUpdate{
		{Name: "a", RxBytes: 1000},
		{Name: "a", Endpoint: "not an endpoint"},
	}})
	if err, _ := res.(error); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad endpoint: %v", res)
	}
	if p, _ := h.f.Peer("a"); p.RxBytes != 100 {
		t.Fatalf("a rejected command changed the state: rx %d", p.RxBytes)
	}
}
