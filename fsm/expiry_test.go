package fsm

import (
	"errors"
	"testing"
	"time"
)

func TestPeerExpiry(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	if err, _ := h.apply(CmdAddPeer, AddPeer{Name: "past", PublicKey: seqKey(1), Enabled: true, ExpiresAt: t0, At: t0}).(error); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a past expiry was accepted: %v", err)
	}
	exp := t0.Add(time.Hour)
	h.mustOK(CmdAddPeer, AddPeer{Name: "a", PublicKey: seqKey(2), Enabled: true, ExpiresAt: exp, At: t0})
	if due := h.f.DuePeers(exp.Add(-time.Second), 10); len(due) != 0 {
		t.Fatalf("due before the expiry: %v", due)
	}
	if due := h.f.DuePeers(exp, 10); len(due) != 1 || due[0] != "a" {
		t.Fatalf("due at the expiry: %v", due)
	}
	// Proposed too early (a leader's clock behind): nothing happens.
	h.mustOK(CmdExpirePeers, ExpirePeers{Names: []string{"a", "gone"}, At: exp.Add(-time.Second)})
	if p, _ := h.f.Peer("a"); !p.Enabled || p.Expired {
		t.Fatalf("expired early: %+v", p)
	}
	h.mustOK(CmdExpirePeers, ExpirePeers{Names: []string{"a"}, At: exp})
	p, _ := h.f.Peer("a")
	if p.Enabled || !p.Expired {
		t.Fatalf("not expired: enabled %v expired %v", p.Enabled, p.Expired)
	}
	if _, enabled := h.f.PeerCounts(); enabled != 0 {
		t.Fatalf("%d enabled peers", enabled)
	}
	on := true
	if err, _ := h.apply(CmdUpdatePeer, UpdatePeer{Name: "a", Enabled: &on, At: exp.Add(time.Minute)}).(error); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an expired peer was enabled without a new expiry: %v", err)
	}
	next := exp.Add(24 * time.Hour)
	h.mustOK(CmdUpdatePeer, UpdatePeer{Name: "a", Enabled: &on, ExpiresAt: &next, At: exp.Add(time.Minute)})
	if p, _ := h.f.Peer("a"); !p.Enabled || p.Expired || !p.ExpiresAt.Equal(next) {
		t.Fatalf("re-enabled: %+v", p)
	}
	never := time.Time{}
	h.mustOK(CmdUpdatePeer, UpdatePeer{Name: "a", ExpiresAt: &never, At: exp.Add(time.Minute)})
	if p, _ := h.f.Peer("a"); !p.ExpiresAt.IsZero() || len(h.f.DuePeers(next.Add(time.Hour), 10)) != 0 {
		t.Fatalf("never: %+v", p)
	}
	if err := CheckProposable(CmdExpirePeers, ExpirePeers{}, 7); !errors.Is(err, ErrUpgradeRequired) {
		t.Fatalf("expire-peers at cluster version 7: %v", err)
	}
	if err := CheckProposable(CmdUpdatePeer, UpdatePeer{ExpiresAt: &never}, 7); !errors.Is(err, ErrUpgradeRequired) {
		t.Fatalf("update-peer with expires_at at cluster version 7: %v", err)
	}
}
