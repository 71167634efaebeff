package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"testing"
)

func TestDigest(t *testing.T) {
	a := newHarness(t, "10.99.0.0/24", "")
	b := newHarness(t, "10.99.0.0/24", "")
	ia, da := a.f.Digest()
	ib, db := b.f.Digest()
	if len(da) != 64 || da != db || ia != ib || ia != a.index {
		t.Fatalf("fresh replicas: (%d %q) vs (%d %q), applied %d", ia, da, ib, db, a.index)
	}
	// The digest is the SHA-256 of the snapshot encoding.
	sum := sha256.Sum256(a.snapshotBytes())
	if want := hex.EncodeToString(sum[:]); da != want {
		t.Fatalf("digest %s, snapshot hash %s", da, want)
	}

	for _, h := range []*harness{a, b} {
		if _, err := h.addPeer("p1", seqKey(1)); err != nil {
			t.Fatal(err)
		}
	}
	ia2, da2 := a.f.Digest()
	_, db2 := b.f.Digest()
	if da2 == da || ia2 != a.index {
		t.Fatalf("a write left the digest at %s (index %d, applied %d)", da2, ia2, a.index)
	}
	if da2 != db2 {
		t.Fatalf("replicas with the same commands differ: %s vs %s", da2, db2)
	}

	// A rejected command changes neither the state nor the digest.
	if _, err := a.addPeer("p1", seqKey(2)); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if _, d := a.f.Digest(); d != da2 {
		t.Fatalf("a rejected command changed the digest")
	}

	// A write on one replica only makes them differ.
	if _, err := a.addPeer("p2", seqKey(3)); err != nil {
		t.Fatal(err)
	}
	if _, d := a.f.Digest(); d == db2 {
		t.Fatal("replicas with different states report the same digest")
	}

	// Restoring b's state into a gives a b's digest again.
	if err := a.f.Restore(io.NopCloser(bytes.NewReader(b.snapshotBytes()))); err != nil {
		t.Fatal(err)
	}
	if _, d := a.f.Digest(); d != db2 {
		t.Fatalf("after restore: %s, want %s", d, db2)
	}
}

// TestDigestCached: asking again without a new command does not encode the
// state again.
func TestDigestCached(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	for i := range 50 {
		if _, err := h.addPeer(fmt.Sprintf("p%02d", i), seqKey(i+10)); err != nil {
			t.Fatal(err)
		}
	}
	_, d := h.f.Digest()
	allocs := testing.AllocsPerRun(100, func() { h.f.Digest() })
	if allocs != 0 {
		t.Fatalf("a repeated Digest allocates %.0f times: it recomputes", allocs)
	}
	if _, d2 := h.f.Digest(); d2 != d {
		t.Fatal("cached digest differs")
	}
}
