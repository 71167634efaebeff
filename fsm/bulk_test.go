package fsm

import (
	"errors"
	"net/netip"
	"testing"
)

func TestAddPeersAllOrNothing(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	if _, err := h.addPeer("x", seqKey(100)); err != nil {
		t.Fatal(err)
	}
	digest := string(h.snapshotBytes())
	bad := AddPeers{At: t0, Peers: []AddPeer{
		{Name: "a", PublicKey: seqKey(1), Enabled: true},
		{Name: "b", PublicKey: seqKey(2), Enabled: true, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}},
		{Name: "c", PublicKey: seqKey(100), Enabled: true}, // x's key
	}}
	if _, err := h.f.CheckAddPeers(bad); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("dry run: %v", err)
	}
	res := h.apply(CmdAddPeers, bad)
	var be *BulkPeerError
	if err, _ := res.(error); !errors.As(err, &be) || be.Index != 2 || !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("add-peers with a duplicate key: %v", res)
	}
	if string(h.snapshotBytes()) != digest {
		t.Fatal("a failed add-peers changed the state")
	}
	good := bad
	good.Peers = append(good.Peers[:2:2], AddPeer{Name: "c", PublicKey: seqKey(3), Enabled: true})
	if r, err := h.f.CheckAddPeers(good); err != nil || len(r.Peers) != 3 {
		t.Fatalf("dry run: %v, %v", r, err)
	}
	if string(h.snapshotBytes()) != digest {
		t.Fatal("a dry run changed the state")
	}
	r := h.mustOK(CmdAddPeers, good).(AddPeersResult)
	if len(r.Peers) != 3 || !r.Peers[2].Created || r.Peers[0].Peer.Addresses[0].String() != "10.99.0.3/32" {
		t.Fatalf("add-peers: %+v", r)
	}
	// A retry leaves them as they are.
	r = h.mustOK(CmdAddPeers, good).(AddPeersResult)
	if r.Peers[0].Created {
		t.Fatal("a retry created a peer again")
	}
	if err, _ := h.apply(CmdAddPeers, AddPeers{At: t0}).(error); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty add-peers: %v", err)
	}
}
