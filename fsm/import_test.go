package fsm

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestServerPools(t *testing.T) {
	pp := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	p4, p6, err := ServerPools(pp("10.8.0.1/24", "fd42::1/64"))
	if err != nil || p4.String() != "10.8.0.0/24" || p6.String() != "fd42::/64" {
		t.Fatalf("pools %s %s %v", p4, p6, err)
	}
	for _, bad := range [][]string{
		{"10.8.0.254/24"},              // not the first host
		{"10.8.0.1/32"},                // no network
		{"10.8.0.1/24", "10.9.0.1/24"}, // two IPv4
		{"fd42::1/64"},                 // no IPv4
		{"10.8.0.1/24", "fd42::5/64"},  // IPv6 not the first host
	} {
		if _, _, err := ServerPools(pp(bad...)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	_, _, err = ServerPools(pp("10.8.0.254/24"))
	if !strings.Contains(err.Error(), "10.8.0.1/24") {
		t.Errorf("the error does not say which address would do: %v", err)
	}
}

func TestCheckImport(t *testing.T) {
	st := testSettings("10.99.0.0/24", "")
	at := t0
	first := st.ServerAddresses()[0].Addr().Next()
	c := AddPeers{At: at, Peers: []AddPeer{
		{Name: "a", PublicKey: seqKey(1), Enabled: true, Addresses: []netip.Prefix{netip.PrefixFrom(first, 32)}},
		{Name: "b", PublicKey: seqKey(2), Enabled: true},
	}}
	res, err := CheckImport(st, c)
	if err != nil || len(res.Peers) != 2 || !res.Peers[1].Created {
		t.Fatalf("check: %+v %v", res, err)
	}
	c.Peers = append(c.Peers, AddPeer{Name: "c", PublicKey: seqKey(1), Enabled: true})
	var be *BulkPeerError
	if _, err := CheckImport(st, c); !errors.As(err, &be) || be.Index != 2 || !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("duplicate key: %v", err)
	}
	st.ListenPort = 0
	if _, err := CheckImport(st, c); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad settings: %v", err)
	}
}
