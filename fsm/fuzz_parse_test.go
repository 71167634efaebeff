package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseCIDR checks ParsePrefix (peers' allowed_ips, pools, client
// allowed IPs) and ParseHostAddress (peers' addresses) against the
// standard library's parser:
//   - nothing panics, and an error wraps ErrInvalid;
//   - ParsePrefix accepts exactly the canonical, zone-free, non-mapped
//     prefixes netip accepts (after trimming surrounding space);
//   - ParseHostAddress accepts exactly the zone-free, non-mapped single
//     hosts, written as an address or as /32 or /128;
//   - an accepted value prints in a form that parses back to itself, and
//     survives a JSON round trip (the form it takes in the log and in
//     snapshots);
//   - the result does not depend on the call (no hidden state).
func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/24", "10.0.0.1/24", "10.0.0.1/32", "10.0.0.1", "0.0.0.0/0", "255.255.255.255/32",
		"2001:db8::/32", "2001:db8::1/128", "2001:DB8::/32", "2001:db8:0:0::/64", "::/0", "::1",
		"::ffff:10.0.0.0/104", "::ffff:10.0.0.1", "::ffff:10.0.0.1/128", "::ffff:0:0/96",
		"fe80::1%eth0", "fe80::/64%eth0", "fe80::1%eth0/128",
		" 10.0.0.0/24", "10.0.0.0/24\n", "\u00a010.0.0.0/24", "10.0.0.0/ 24", "10.0.0.0 /24",
		"10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08", "010.0.0.0/8", "10.0.0/24", "10.0.0.0/", "/24",
		"10.0.0.0/24/24", "1.2.3.4:80", "[2001:db8::1]", "[2001:db8::1]/128", "2001:db8::/129",
		"", "/", "%", "x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkParsePrefix(t, s)
		checkParseHostAddress(t, s)
	})
}

func checkParsePrefix(t *testing.T, s string) {
	t.Helper()
	p, err := ParsePrefix(s)
	ref, refErr := netip.ParsePrefix(strings.TrimSpace(s))
	want := refErr == nil && ref.Addr().Zone() == "" && !ref.Addr().Is4In6() && ref.Masked() == ref
	if (err == nil) != want {
		t.Fatalf("ParsePrefix(%q) = %v, %v; netip says %v, %v", s, p, err, ref, refErr)
	}
	p2, err2 := ParsePrefix(s)
	if p2 != p || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
		t.Fatalf("ParsePrefix(%q) is not deterministic", s)
	}
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParsePrefix(%q): error does not wrap ErrInvalid: %v", s, err)
		}
		return
	}
	if p != ref {
		t.Fatalf("ParsePrefix(%q) = %v, netip says %v", s, p, ref)
	}
	if err := CheckPrefix(p); err != nil {
		t.Fatalf("ParsePrefix(%q) accepted %v, which CheckPrefix refuses: %v", s, p, err)
	}
	if p.Bits() < 0 || p.Bits() > p.Addr().BitLen() {
		t.Fatalf("ParsePrefix(%q): prefix length %d out of range", s, p.Bits())
	}
	checkPrefixForms(t, p)
	if back, err := ParsePrefix(p.String()); err != nil || back != p {
		t.Fatalf("ParsePrefix(%q) = %v, but its string form parses to %v, %v", s, p, back, err)
	}
}

func checkParseHostAddress(t *testing.T, s string) {
	t.Helper()
	p, err := ParseHostAddress(s)
	trimmed := strings.TrimSpace(s)
	var ref netip.Prefix
	var refErr error
	zoned := false
	if strings.Contains(trimmed, "/") {
		ref, refErr = netip.ParsePrefix(trimmed)
	} else {
		var a netip.Addr
		if a, refErr = netip.ParseAddr(trimmed); refErr == nil {
			ref, zoned = netip.PrefixFrom(a, a.BitLen()), a.Zone() != ""
		}
	}
	want := refErr == nil && !zoned && ref.Addr().Zone() == "" && !ref.Addr().Is4In6() && ref.IsSingleIP()
	if (err == nil) != want {
		t.Fatalf("ParseHostAddress(%q) = %v, %v; netip says %v, %v", s, p, err, ref, refErr)
	}
	p2, err2 := ParseHostAddress(s)
	if p2 != p || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
		t.Fatalf("ParseHostAddress(%q) is not deterministic", s)
	}
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseHostAddress(%q): error does not wrap ErrInvalid: %v", s, err)
		}
		return
	}
	if p != ref || !p.IsSingleIP() || p.Bits() != p.Addr().BitLen() {
		t.Fatalf("ParseHostAddress(%q) = %v, want the single host %v", s, p, ref)
	}
	if err := CheckPrefix(p); err != nil {
		t.Fatalf("ParseHostAddress(%q) accepted %v, which CheckPrefix refuses: %v", s, p, err)
	}
	checkPrefixForms(t, p)
	for _, form := range []string{p.String(), p.Addr().String()} {
		if back, err := ParseHostAddress(form); err != nil || back != p {
			t.Fatalf("ParseHostAddress(%q) = %v, but %q parses to %v, %v", s, p, form, back, err)
		}
	}
}

// checkPrefixForms: an accepted prefix has a one-line text form without
// spaces and survives JSON encoding unchanged.
func checkPrefixForms(t *testing.T, p netip.Prefix) {
	t.Helper()
	if txt := p.String(); strings.ContainsAny(txt, " \t\r\n%") {
		t.Fatalf("accepted prefix prints as %q", txt)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal %v: %v", p, err)
	}
	var back netip.Prefix
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Fatalf("JSON round trip of %v gave %v, %v", p, back, err)
	}
}

// FuzzSettingsPrefixes builds bootstrap settings from flag-like strings
// (pool, pool6, comma-separated VIPs and client allowed IPs, as the CLI
// takes them) and checks ValidateSettings: nothing panics; a rejection
// wraps ErrInvalid or ErrOverlap; accepted settings keep every rule
// (canonical IPv4 pool and IPv6 pool6 with room for the server and a
// peer, one or two unicast VIPs outside the pools, at most one per
// family, MTU, keepalive and port in range) and work: Init succeeds, the
// state survives a snapshot, and a first peer gets an address inside each
// pool that is neither the network, the server's nor the broadcast
// address.
func FuzzSettingsPrefixes(f *testing.F) {
	f.Add("10.99.0.0/24", "", "192.0.2.10/24", "0.0.0.0/0", 1420, 25, 51820)
	f.Add("10.99.0.0/24", "fd00:99::/64", "192.0.2.10/24,2001:db8::10/64", "0.0.0.0/0,::/0", 1420, 25, 51820)
	f.Add("10.99.0.0/30", "fd00:99::/126", "192.0.2.10/32", "10.99.0.0/24", 1280, 0, 1)
	f.Add("10.99.0.0/31", "", "192.0.2.10/24", "", 9000, 65535, 65535)
	f.Add("10.99.0.1/24", "", "192.0.2.10/24", "", 1420, 25, 51820)
	f.Add("10.99.0.0/24", "10.98.0.0/24", "192.0.2.10/24", "", 1420, 25, 51820)
	f.Add("10.99.0.0/24", "fd00:99::/64", "10.99.0.7/24", "", 1420, 25, 51820)
	f.Add("10.99.0.0/24", "", "192.0.2.10/24,192.0.2.11/24", "", 1420, 25, 51820)
	f.Add("10.99.0.0/24", "", "0.0.0.0/0", "", 1420, 25, 51820)
	f.Add("10.99.0.0/24", "", "224.0.0.1/24", "", 1420, 25, 51820)
	f.Add("10.99.0.0/24", "", "::ffff:192.0.2.10/120", "", 1420, 25, 51820)
	f.Add("::ffff:10.99.0.0/120", "", "192.0.2.10/24", "", 1420, 25, 51820)
	f.Add("0.0.0.0/0", "::/0", "192.0.2.10/24", "", 1420, 25, 51820)
	f.Add("10.99.0.0/24", "", "192.0.2.10/24", "10.0.0.1/8", 1279, -1, 0)
	f.Fuzz(func(t *testing.T, pool, pool6, vips, allowed string, mtu, keepalive, port int) {
		st := testSettings("10.99.0.0/24", "")
		st.VIPs, st.ClientAllowedIPs = nil, nil
		st.MTU, st.Keepalive, st.ListenPort = mtu, keepalive, port
		var err error
		if st.Pool, err = ParsePrefix(pool); err != nil {
			return
		}
		if pool6 != "" {
			if st.Pool6, err = ParsePrefix(pool6); err != nil {
				return
			}
		}
		for _, v := range strings.Split(vips, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(v))
			if err != nil {
				return
			}
			st.VIPs = append(st.VIPs, p)
		}
		for _, a := range strings.Split(allowed, ",") {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			p, err := ParsePrefix(a)
			if err != nil {
				return
			}
			st.ClientAllowedIPs = append(st.ClientAllowedIPs, p)
		}
		if err := ValidateSettings(&st); err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOverlap) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if err2 := ValidateSettings(&st); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("rejection is not consistent: %v then %v", err, err2)
			}
			return
		}
		checkSettings(t, st)
	})
}

func checkSettings(t *testing.T, st Settings) {
	t.Helper()
	pools := []netip.Prefix{st.Pool}
	if !st.Pool.Addr().Is4() || st.Pool.Bits() > 30 || CheckPrefix(st.Pool) != nil {
		t.Fatalf("accepted pool %v", st.Pool)
	}
	if st.Pool6.IsValid() {
		if !st.Pool6.Addr().Is6() || st.Pool6.Addr().Is4In6() || st.Pool6.Bits() > 126 || CheckPrefix(st.Pool6) != nil {
			t.Fatalf("accepted pool6 %v", st.Pool6)
		}
		pools = append(pools, st.Pool6)
	}
	var v4, v6 int
	for _, v := range st.VIPs {
		a := v.Addr()
		if !v.IsValid() || a.Zone() != "" || a.Is4In6() || !a.IsGlobalUnicast() {
			t.Fatalf("accepted VIP %v", v)
		}
		if a.Is4() {
			v4++
		} else {
			v6++
		}
		for _, p := range pools {
			if p.Contains(a) {
				t.Fatalf("accepted VIP %v inside pool %v", v, p)
			}
		}
	}
	if len(st.VIPs) < 1 || v4 > 1 || v6 > 1 {
		t.Fatalf("accepted VIPs %v", st.VIPs)
	}
	if st.MTU < 1280 || st.MTU > 9000 || st.Keepalive < 0 || st.Keepalive > 65535 || st.ListenPort < 1 || st.ListenPort > 65535 {
		t.Fatalf("accepted MTU %d, keepalive %d, port %d", st.MTU, st.Keepalive, st.ListenPort)
	}
	for _, p := range st.ClientAllowedIPs {
		if CheckPrefix(p) != nil {
			t.Fatalf("accepted client allowed IPs %v", p)
		}
	}
	for i, sa := range st.ServerAddresses() {
		if sa.Bits() != pools[i].Bits() || !pools[i].Contains(sa.Addr()) || sa.Addr() == pools[i].Addr() {
			t.Fatalf("server address %v does not fit pool %v", sa, pools[i])
		}
	}

	// The settings work: Init, a first peer, a snapshot round trip.
	h := &harness{t: t, f: New(nil)}
	h.mustOK(CmdInit, Init{Settings: st, CACertPEM: "cert", CAKeyPEM: "key", JoinToken: "jointoken",
		AdminToken: AdminToken{ID: "root", Hash: "adminhash"}, At: t0})
	peer, err := h.addPeer("first", seqKey(1))
	if err != nil {
		t.Fatalf("first peer refused: %v", err)
	}
	if len(peer.Addresses) != len(pools) {
		t.Fatalf("first peer got %v for pools %v", peer.Addresses, pools)
	}
	for i, a := range peer.Addresses {
		p := pools[i]
		last := lastAddr(p)
		if !a.IsSingleIP() || !p.Contains(a.Addr()) || a.Addr() == p.Addr() || a.Addr() == p.Addr().Next() ||
			(p.Addr().Is4() && a.Addr() == last) {
			t.Fatalf("first peer got %v in pool %v", a, p)
		}
	}
	snap := h.snapshotBytes()
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	var buf bytes.Buffer
	if err := g.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), snap) {
		t.Fatal("snapshot round trip changed the state")
	}
}
