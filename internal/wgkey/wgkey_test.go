package wgkey

import "testing"

func TestGenerate(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	if a.Private == b.Private || a.Public == b.Public {
		t.Fatal("two key pairs are equal")
	}
	pub, err := Public(a.Private)
	if err != nil || pub != a.Public {
		t.Fatalf("Public = %q, %v; want %q", pub, err, a.Public)
	}
	// Known vector: the private key of all 0x01 bytes (clamped by X25519).
	if _, err := Public("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="); err != nil {
		t.Fatal(err)
	}
	if _, err := Public("short"); err == nil {
		t.Fatal("short key accepted")
	}
	psk, _ := Preshared()
	if len(psk) != 44 {
		t.Fatalf("psk %d chars", len(psk))
	}
}

// TestKnownVector checks the derivation against WireGuard's own: the
// public key `wg pubkey` prints for this private key.
func TestKnownVector(t *testing.T) {
	pub, err := Public("YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q+URYD3g=")
	if err != nil {
		t.Fatal(err)
	}
	if pub != wantVectorPub {
		t.Fatalf("got %s, want %s", pub, wantVectorPub)
	}
}

// wantVectorPub is what `echo YJ6R...D3g= | wg pubkey` prints.
const wantVectorPub = "pRSaqMzjgWfykj3ICAkp5lsDiiMGzNGba0THF798xXQ="
