package fsm

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func randKey(t testing.TB) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// seqKey is a deterministic, distinct, non-zero key for index i.
func seqKey(i int) string {
	var b [32]byte
	b[0] = 1
	b[1], b[2], b[3], b[4] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return base64.StdEncoding.EncodeToString(b[:])
}

func testSettings(pool, pool6 string) Settings {
	s := Settings{
		PrivateKey:       seqKey(1 << 30),
		PublicKey:        seqKey(1<<30 + 1),
		ListenPort:       51820,
		Pool:             netip.MustParsePrefix(pool),
		VIPs:             []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")},
		Endpoint:         "192.0.2.10:51820",
		ClientAllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
		MTU:              1420,
		Keepalive:        25,
	}
	if pool6 != "" {
		s.Pool6 = netip.MustParsePrefix(pool6)
		s.VIPs = append(s.VIPs, netip.MustParsePrefix("2001:db8::10/64"))
	}
	return s
}

type harness struct {
	t     testing.TB
	f     *FSM
	index uint64
}

func newHarness(t testing.TB, pool, pool6 string) *harness {
	h := &harness{t: t, f: New(nil)}
	h.mustOK(CmdInit, Init{
		Settings:   testSettings(pool, pool6),
		CACertPEM:  "cert",
		CAKeyPEM:   "key",
		JoinToken:  "jointoken",
		AdminToken: AdminToken{ID: "root", Hash: "adminhash"},
		At:         t0,
	})
	return h
}

func (h *harness) apply(t CommandType, body any) any {
	h.t.Helper()
	b, err := Encode(t, body)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	return h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: b})
}

func (h *harness) mustOK(t CommandType, body any) any {
	h.t.Helper()
	res := h.apply(t, body)
	if err, ok := res.(error); ok {
		h.t.Fatalf("%s: %v", t, err)
	}
	return res
}

func (h *harness) addPeer(name string, key string, addrs ...string) (Peer, error) {
	h.t.Helper()
	c := AddPeer{Name: name, PublicKey: key, Enabled: true, At: t0}
	for _, a := range addrs {
		c.Addresses = append(c.Addresses, netip.MustParsePrefix(a))
	}
	res := h.apply(CmdAddPeer, c)
	if err, ok := res.(error); ok {
		return Peer{}, err
	}
	return res.(AddPeerResult).Peer, nil
}

func (h *harness) snapshotBytes() []byte {
	h.t.Helper()
	var buf bytes.Buffer
	if err := h.f.WriteSnapshot(&buf); err != nil {
		h.t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAllocatesLowestFreeAndReuses(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "fd00:99::/64")
	p1, err := h.addPeer("a", seqKey(1))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.99.0.2/32", "fd00:99::2/128"}
	if fmt.Sprint(p1.Addresses) != fmt.Sprint(want) {
		t.Fatalf("first peer got %v, want %v", p1.Addresses, want)
	}
	p2, _ := h.addPeer("b", seqKey(2))
	p3, _ := h.addPeer("c", seqKey(3))
	if p2.Addresses[0].String() != "10.99.0.3/32" || p3.Addresses[0].String() != "10.99.0.4/32" {
		t.Fatalf("got %v %v", p2.Addresses, p3.Addresses)
	}
	h.mustOK(CmdDeletePeer, DeletePeer{Name: "b", At: t0})
	p4, _ := h.addPeer("d", seqKey(4))
	if p4.Addresses[0].String() != "10.99.0.3/32" || p4.Addresses[1].String() != "fd00:99::3/128" {
		t.Fatalf("freed address not reused: %v", p4.Addresses)
	}
	// An explicit address above the cursor is skipped by allocation.
	if _, err := h.addPeer("e", seqKey(5), "10.99.0.5/32"); err != nil {
		t.Fatal(err)
	}
	p6, _ := h.addPeer("f", seqKey(6))
	if p6.Addresses[0].String() != "10.99.0.6/32" {
		t.Fatalf("got %v, want 10.99.0.6", p6.Addresses)
	}
}

func TestPoolExhaustedLeavesStateUnchanged(t *testing.T) {
	h := newHarness(t, "10.99.0.0/29", "") // hosts .1 (server) .2-.6, .7 broadcast
	for i := range 5 {
		if _, err := h.addPeer(fmt.Sprintf("p%d", i), seqKey(i)); err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
	}
	before := h.snapshotBytes()
	_, err := h.addPeer("overflow", seqKey(99))
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("got %v, want ErrPoolExhausted", err)
	}
	if !bytes.Equal(before, h.snapshotBytes()) {
		t.Fatal("state changed by a rejected command")
	}
	if free := h.f.PoolFree()[netip.MustParsePrefix("10.99.0.0/29")]; free != 0 {
		t.Fatalf("free = %d, want 0", free)
	}
}

func TestDualStackExhaustionRollsBack(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "fd00:99::/126") // v6: ::2 and ::3 only
	for i, n := range []string{"a", "b"} {
		if _, err := h.addPeer(n, seqKey(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.addPeer("c", seqKey(3)); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("got %v", err)
	}
	// The IPv4 address tried for c is free again: d takes it after a is gone
	// (and .2 comes before it).
	h.mustOK(CmdDeletePeer, DeletePeer{Name: "b", At: t0})
	p, err := h.addPeer("d", seqKey(4))
	if err != nil || p.Addresses[0].String() != "10.99.0.3/32" {
		t.Fatalf("got %v %v", p.Addresses, err)
	}
}

func TestRejections(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "fd00:99::/64")
	if _, err := h.addPeer("a", seqKey(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.addPeer("site", seqKey(2)); err != nil {
		t.Fatal(err)
	}
	h.mustOK(CmdUpdatePeer, UpdatePeer{Name: "site", AllowedIPs: &[]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, At: t0})
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	zero := base64.StdEncoding.EncodeToString(make([]byte, 32))
	cases := []struct {
		name string
		cmd  AddPeer
		want error
	}{
		{"duplicate name", AddPeer{Name: "a", PublicKey: seqKey(50)}, ErrDuplicateName},
		{"duplicate key", AddPeer{Name: "x", PublicKey: seqKey(1)}, ErrDuplicateKey},
		{"server key", AddPeer{Name: "x", PublicKey: testSettings("10.0.0.0/8", "").PublicKey}, ErrInvalid},
		{"zero key", AddPeer{Name: "x", PublicKey: zero}, ErrInvalid},
		{"short key", AddPeer{Name: "x", PublicKey: "AAAA"}, ErrInvalid},
		{"bad base64", AddPeer{Name: "x", PublicKey: "!!!"}, ErrInvalid},
		{"bad psk", AddPeer{Name: "x", PublicKey: seqKey(51), PresharedKey: zero}, ErrInvalid},
		{"bad name", AddPeer{Name: "a/b", PublicKey: seqKey(51)}, ErrInvalid},
		{"long name", AddPeer{Name: string(bytes.Repeat([]byte("n"), 65)), PublicKey: seqKey(51)}, ErrInvalid},
		{"control char", AddPeer{Name: "a\x01", PublicKey: seqKey(51)}, ErrInvalid},
		{"address in use", AddPeer{Name: "x", PublicKey: seqKey(51), Addresses: pfx("10.99.0.2/32")}, ErrAddressInUse},
		{"server address", AddPeer{Name: "x", PublicKey: seqKey(51), Addresses: pfx("10.99.0.1/32")}, ErrAddressInUse},
		{"network address", AddPeer{Name: "x", PublicKey: seqKey(51), Addresses: pfx("10.99.0.0/32")}, ErrInvalid},
		{"broadcast", AddPeer{Name: "x", PublicKey: seqKey(51), Addresses: pfx("10.99.0.255/32")}, ErrInvalid},
		{"outside pool", AddPeer{Name: "x", PublicKey: seqKey(51), Addresses: pfx("10.98.0.5/32")}, ErrInvalid},
		{"not a host", AddPeer{Name: "x", PublicKey: seqKey(51), Addresses: pfx("10.99.0.4/30")}, ErrInvalid},
		{"routes overlap pool", AddPeer{Name: "x", PublicKey: seqKey(51), AllowedIPs: pfx("10.0.0.0/8")}, ErrOverlap},
		{"routes inside pool", AddPeer{Name: "x", PublicKey: seqKey(51), AllowedIPs: pfx("10.99.0.128/25")}, ErrOverlap},
		{"routes overlap VIP", AddPeer{Name: "x", PublicKey: seqKey(51), AllowedIPs: pfx("192.0.2.0/24")}, ErrOverlap},
		{"routes overlap peer", AddPeer{Name: "x", PublicKey: seqKey(51), AllowedIPs: pfx("198.51.100.128/25")}, ErrOverlap},
		{"routes contain peer's", AddPeer{Name: "x", PublicKey: seqKey(51), AllowedIPs: pfx("198.51.0.0/16")}, ErrOverlap},
		{"routes overlap each other", AddPeer{Name: "x", PublicKey: seqKey(51), AllowedIPs: pfx("203.0.113.0/24", "203.0.113.0/25")}, ErrOverlap},
		{"non-canonical route", AddPeer{Name: "x", PublicKey: seqKey(51), AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("203.0.113.7"), 24)}}, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.snapshotBytes()
			c.cmd.At = t0
			res := h.apply(CmdAddPeer, c.cmd)
			err, _ := res.(error)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", res, c.want)
			}
			if !bytes.Equal(before, h.snapshotBytes()) {
				t.Fatal("state changed by a rejected command")
			}
		})
	}
	// Idempotent retry: same name and key.
	res := h.apply(CmdAddPeer, AddPeer{Name: "a", PublicKey: seqKey(1), At: t0})
	if r, ok := res.(AddPeerResult); !ok || r.Created || r.Peer.Addresses[0].String() != "10.99.0.2/32" {
		t.Fatalf("retry got %#v", res)
	}
	// A peer's own routes may be replaced by overlapping ones.
	h.mustOK(CmdUpdatePeer, UpdatePeer{Name: "site", AllowedIPs: &[]netip.Prefix{netip.MustParsePrefix("198.51.100.0/25")}, At: t0})
	// And the freed half is now usable by others.
	h.mustOK(CmdUpdatePeer, UpdatePeer{Name: "a", AllowedIPs: &[]netip.Prefix{netip.MustParsePrefix("198.51.100.128/25")}, At: t0})
}

func TestUnknownCommandTypes(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	if res := h.f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{byte(IgnorableFlag | 100), '{', '}'}}); res != nil {
		t.Fatalf("ignorable type: got %v", res)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("unknown non-ignorable type did not panic")
		}
	}()
	h.f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{100, '{', '}'}})
}

func TestMalformedBodyRejected(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	for _, data := range [][]byte{{byte(CmdAddPeer)}, append([]byte{byte(CmdAddPeer)}, `{"name":1}`...), append([]byte{byte(CmdAddPeer)}, `[]`...)} {
		res := h.f.Apply(&raft.Log{Type: raft.LogCommand, Data: data})
		if err, ok := res.(error); !ok || !IsRejection(err) {
			t.Fatalf("%q: got %v", data, res)
		}
	}
}

func TestSnapshotRestoreReplacesState(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "fd00:99::/64")
	for i := range 20 {
		if _, err := h.addPeer(fmt.Sprintf("p%02d", i), seqKey(i)); err != nil {
			t.Fatal(err)
		}
	}
	h.mustOK(CmdDeletePeer, DeletePeer{Name: "p03", At: t0})
	snap := h.snapshotBytes()

	other := newHarness(t, "10.50.0.0/16", "")
	if _, err := other.addPeer("stale", seqKey(500)); err != nil {
		t.Fatal(err)
	}
	if err := other.f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.f.Peer("stale"); ok {
		t.Fatal("restore merged instead of replacing")
	}
	if !bytes.Equal(snap, other.snapshotBytes()) {
		t.Fatal("restored state differs")
	}
	// Allocation after restore picks the same address as the original.
	a, _ := h.addPeer("n", seqKey(900))
	b, _ := other.addPeer("n", seqKey(900))
	if fmt.Sprint(a.Addresses) != fmt.Sprint(b.Addresses) || a.Addresses[0].String() != "10.99.0.5/32" {
		t.Fatalf("after restore: %v vs %v", a.Addresses, b.Addresses)
	}
}

func TestRestoreRejectsUnknownVersion(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	before := h.snapshotBytes()
	for _, in := range []string{
		`{"format":"raftguard-snapshot","version":2}` + "\n{}\n",
		`{"format":"other","version":1}` + "\n{}\n",
		"garbage",
	} {
		err := h.f.Restore(io.NopCloser(bytes.NewReader([]byte(in))))
		if !errors.Is(err, ErrSnapshotVersion) {
			t.Fatalf("%q: got %v", in, err)
		}
	}
	if !bytes.Equal(before, h.snapshotBytes()) {
		t.Fatal("failed restore changed the state")
	}
}

func TestRestoreRejectsCorruptPeers(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	h.addPeer("a", seqKey(1))
	h.addPeer("b", seqKey(2))
	snap := string(h.snapshotBytes())
	// b now claims a's address.
	bad := bytes.Replace([]byte(snap), []byte(`"addresses":["10.99.0.3/32"]`), []byte(`"addresses":["10.99.0.2/32"]`), 1)
	if bytes.Equal(bad, []byte(snap)) {
		t.Fatal("test did not alter the snapshot")
	}
	if err := ValidateSnapshot(bytes.NewReader(bad)); !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("got %v", err)
	}
}

func TestPrefixTrie(t *testing.T) {
	var tr prefixTrie
	tr.insert(netip.MustParsePrefix("10.0.0.0/8"), "a")
	tr.insert(netip.MustParsePrefix("2001:db8::/48"), "b")
	tr.insert(netip.MustParsePrefix("192.0.2.7/32"), "c")
	for _, c := range []struct {
		p     string
		owner string
		hit   bool
	}{
		{"10.1.0.0/16", "a", true},
		{"0.0.0.0/0", "", true},
		{"11.0.0.0/8", "", false},
		{"2001:db8:0:1::/64", "b", true},
		{"2001:db8::/32", "b", true},
		{"2001:db9::/32", "", false},
		{"192.0.2.0/24", "c", true},
		{"192.0.2.6/32", "", false},
	} {
		owner, q, hit := tr.overlap(netip.MustParsePrefix(c.p))
		if hit != c.hit || (c.owner != "" && owner != c.owner) {
			t.Errorf("%s: got %q %v %v", c.p, owner, q, hit)
		}
		if hit && !q.Overlaps(netip.MustParsePrefix(c.p)) {
			t.Errorf("%s: reported %s does not overlap", c.p, q)
		}
	}
	tr.remove(netip.MustParsePrefix("10.0.0.0/8"))
	if _, _, hit := tr.overlap(netip.MustParsePrefix("10.1.0.0/16")); hit {
		t.Fatal("removed prefix still found")
	}
	if _, _, hit := tr.overlap(netip.MustParsePrefix("0.0.0.0/0")); !hit {
		t.Fatal("remaining prefix lost")
	}
}

func TestValidators(t *testing.T) {
	for _, s := range []string{"10.0.0.1/24", "fe80::/64%eth0", "::ffff:10.0.0.0/104", "x"} {
		if _, err := ParsePrefix(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePrefix(%q) = %v", s, err)
		}
	}
	if p, err := ParsePrefix(" 10.0.0.0/24"); err != nil || p.String() != "10.0.0.0/24" {
		t.Errorf("got %v %v", p, err)
	}
	for _, s := range []string{"10.0.0.1/24", "fe80::1%eth0", "nope"} {
		if _, err := ParseHostAddress(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseHostAddress(%q) = %v", s, err)
		}
	}
	if p, err := ParseHostAddress("2001:db8::5"); err != nil || p.String() != "2001:db8::5/128" {
		t.Errorf("got %v %v", p, err)
	}
	secret := randKey(t)
	err := ValidateKey(secret[:40])
	if err == nil || bytes.Contains([]byte(err.Error()), []byte(secret[:10])) {
		t.Errorf("bad key error %v must not echo the key", err)
	}
}
