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

// badSettings are settings values that must never reach a client config.
var badSettings = map[string]func(*Settings){
	"dns injection":         func(s *Settings) { s.ClientDNS = []string{"1.1.1.1\nPreUp = id > owned"} },
	"endpoint injection":    func(s *Settings) { s.Endpoint = "192.0.2.10:51820\nPostUp = touch owned" },
	"endpoint no port":      func(s *Settings) { s.Endpoint = "vpn.example.com" },
	"endpoint port 0":       func(s *Settings) { s.Endpoint = "vpn.example.com:0" },
	"endpoint bare IPv6":    func(s *Settings) { s.Endpoint = "2001:db8::1:51820" },
	"endpoint zone":         func(s *Settings) { s.Endpoint = "[fe80::1%eth0]:51820" },
	"endpoint underscore":   func(s *Settings) { s.Endpoint = "bad_host:51820" },
	"dns space":             func(s *Settings) { s.ClientDNS = []string{"a b"} },
	"dns unspecified":       func(s *Settings) { s.ClientDNS = []string{"0.0.0.0"} },
	"dns too many":          func(s *Settings) { s.ClientDNS = strings.Split(strings.Repeat("a,", MaxClientDNS)+"a", ",") },
	"dns label too long":    func(s *Settings) { s.ClientDNS = []string{strings.Repeat("a", 64) + ".example"} },
	"dns trailing dash":     func(s *Settings) { s.ClientDNS = []string{"a-.example"} },
	"dns control character": func(s *Settings) { s.ClientDNS = []string{"a\x00b"} },
}

// TestSettingsRulesOnEveryPath runs every bad settings value through each
// path that can set settings: the admission check (bootstrap, the settings
// service, an import), UpdateSettings in Apply from cluster version 3, and
// the API's check of a snapshot file. Before cluster version 3, Apply keeps
// the first release's rules, as every replica of that version does.
func TestSettingsRulesOnEveryPath(t *testing.T) {
	for name, bad := range badSettings {
		st := testSettings("10.0.0.0/24", "")
		bad(&st)
		if err := ValidateSettings(&st); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: admission: %v", name, err)
		}
		h := newHarness(t, "10.0.0.0/24", "")
		h.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: textRulesSince})
		digest := h.snapshotBytes()
		up := UpdateSettings{Endpoint: &st.Endpoint, ClientDNS: &st.ClientDNS, At: t0}
		if res, _ := h.apply(CmdUpdateSettings, up).(error); !errors.Is(res, ErrInvalid) {
			t.Errorf("%s: update settings: %v", name, res)
		}
		if !bytes.Equal(h.snapshotBytes(), digest) {
			t.Errorf("%s: a refused update changed the state", name)
		}
		old := newHarness(t, "10.0.0.0/24", "")
		old.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: textRulesSince - 1})
		if res, _ := old.apply(CmdUpdateSettings, up).(error); res != nil {
			t.Errorf("%s: cluster version %d refuses what its older replicas accept: %v", name, textRulesSince-1, res)
		}
		snap := bytes.Replace(digest, []byte(`"endpoint":"192.0.2.10:51820"`), mustJSONField(t, "endpoint", st.Endpoint), 1)
		if len(st.ClientDNS) > 0 {
			snap = bytes.Replace(snap, []byte(`"mtu":`), append(mustJSONField(t, "client_dns", st.ClientDNS), []byte(`,"mtu":`)...), 1)
		}
		if bytes.Equal(snap, digest) {
			t.Fatalf("%s: the snapshot edit did nothing", name)
		}
		if err := ValidateSnapshot(bytes.NewReader(snap)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: validate snapshot: %v", name, err)
		}
		// A node still loads a snapshot its cluster wrote.
		if err := New(nil).Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Errorf("%s: restore: %v", name, err)
		}
	}
}

// TestNodeAndTokenRulesOnEveryPath: node addresses and the join token are
// printed and dialled; from cluster version 3 a line break or a missing
// port is refused by the live commands.
func TestNodeAndTokenRulesOnEveryPath(t *testing.T) {
	h := newHarness(t, "10.0.0.0/24", "")
	h.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: textRulesSince})
	for _, a := range []string{"127.0.0.1:7443\nPostUp = x", "127.0.0.1", "127.0.0.1:0", "", "a b:1", "[::1%lo]:1"} {
		for _, c := range []RegisterNode{{ID: "n1", RaftAddr: a, APIAddr: "127.0.0.1:7443"}, {ID: "n1", RaftAddr: "127.0.0.1:7000", APIAddr: a}} {
			if res, _ := h.apply(CmdRegisterNode, c).(error); !errors.Is(res, ErrInvalid) {
				t.Errorf("register %q: %v", a, res)
			}
			if err := ValidateNodeAddr(a); !errors.Is(err, ErrInvalid) {
				t.Errorf("admission of %q: %v", a, err)
			}
		}
	}
	for _, tok := range []string{"", "a\nb", "a b", strings.Repeat("a", 257)} {
		if res, _ := h.apply(CmdSetJoinToken, SetJoinToken{Token: tok}).(error); !errors.Is(res, ErrInvalid) {
			t.Errorf("join token %q: %v", tok, res)
		}
	}
	h.mustOK(CmdRegisterNode, RegisterNode{ID: "n1", RaftAddr: "node1.example:7000", APIAddr: "[2001:db8::1]:7443"})
}

func TestPeerRouteRules(t *testing.T) {
	rc := RouteContext{
		Pool:      netip.MustParsePrefix("10.0.0.0/24"),
		VIPs:      []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")},
		NodeAddrs: NodeAddrs([]Node{{RaftAddr: "198.51.100.7:7000", APIAddr: "node.example:7443"}}),
	}
	for _, r := range []string{"0.0.0.0/0", "::/0", "127.0.0.0/8", "127.0.0.1/32", "126.0.0.0/7", "224.0.0.0/4", "239.1.1.1/32",
		"169.254.0.0/16", "0.0.0.0/8", "255.255.255.255/32", "fd00::/64", "192.0.2.0/24", "192.0.2.10/32", "198.51.100.0/24"} {
		if err := ValidatePeerRoutes(rc, []netip.Prefix{netip.MustParsePrefix(r)}); err == nil {
			t.Errorf("%s accepted", r)
		}
	}
	rc.Pool6 = netip.MustParsePrefix("fd00:1::/64")
	for _, r := range []string{"::1/128", "fe80::/10", "ff00::/8", "::/128"} {
		if err := ValidatePeerRoutes(rc, []netip.Prefix{netip.MustParsePrefix(r)}); err == nil {
			t.Errorf("%s accepted", r)
		}
	}
	ok := []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("fd00:2::/48"), netip.MustParsePrefix("198.51.100.8/29")}
	if err := ValidatePeerRoutes(rc, ok); err != nil {
		t.Errorf("site-to-site routes refused: %v", err)
	}
	many := make([]netip.Prefix, MaxAllowedIPs+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), 32)
	}
	if err := ValidatePeerRoutes(rc, many); err == nil {
		t.Error("too many routes accepted")
	}
	if err := ValidatePeerRoutes(rc, many[:MaxAllowedIPs]); err != nil {
		t.Errorf("%d routes refused: %v", MaxAllowedIPs, err)
	}
}

func TestKeyPairRules(t *testing.T) {
	if err := ValidateServerKeyPair(seqKey(1), seqKey(2)); !errors.Is(err, ErrInvalid) {
		t.Errorf("mismatched pair: %v", err)
	}
	// RFC 7748, section 6.1: Alice's key pair.
	priv := "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
	pub := "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
	if err := ValidateServerKeyPair(priv, pub); err != nil {
		t.Errorf("RFC 7748 pair: %v", err)
	}
	if err := ValidateCAPair("cert", "key"); !errors.Is(err, ErrInvalid) {
		t.Errorf("CA pair: %v", err)
	}
}

func mustJSONField(t *testing.T, k string, v any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{k: v})
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(bytes.TrimPrefix(b, []byte("{")), []byte("}"))
}
