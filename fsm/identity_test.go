package fsm

import (
	"errors"
	"net/netip"
	"testing"
)

func TestJoinIdentityRules(t *testing.T) {
	ms := Members(map[string]string{"n1": "10.0.0.1:7000", "n2": "10.0.0.2:7000"},
		[]Node{{ID: "n1", RaftAddr: "10.0.0.1:7000", APIAddr: "10.0.0.1:7443"}, {ID: "n3", RaftAddr: "node3.example:7000", APIAddr: "node3.example:7443"}})
	if len(ms) != 3 {
		t.Fatalf("members %v", ms)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if err := CheckNewNodeID(ms, id); !errors.Is(err, ErrNodeIDInUse) {
			t.Errorf("%s: %v", id, err)
		}
	}
	if err := CheckNewNodeID(ms, "n4"); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		id, raft, api string
		same          bool
		err           error
	}{
		{"n1", "10.0.0.1:7000", "10.0.0.1:7443", true, nil},
		{"n2", "10.0.0.2:7000", "10.0.0.2:7443", true, nil},
		{"n1", "10.0.0.9:7000", "10.0.0.9:7443", false, ErrNodeIDInUse},
		{"n4", "10.0.0.2:7000", "10.0.0.4:7443", false, ErrNodeAddressInUse},
		{"n4", "10.0.0.4:7000", "10.0.0.1:7443", false, ErrNodeAddressInUse},
		{"n4", "NODE3.example.:7000", "10.0.0.4:7443", false, ErrNodeAddressInUse},
		{"n4", "10.0.0.4:7000", "10.0.0.4:7443", false, nil},
		{"n4", "10.0.0.1:7001", "10.0.0.1:7444", false, nil},
	} {
		same, err := CheckJoinAddrs(ms, c.id, c.raft, c.api)
		if same != c.same || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%+v: same %v err %v", c, same, err)
		}
	}
	ip := netip.MustParseAddr
	if err := CheckCertIPs(ms, "n4", []netip.Addr{ip("10.0.0.4"), ip("127.0.0.1"), ip("::1")}); err != nil {
		t.Error(err)
	}
	if err := CheckCertIPs(ms, "n4", []netip.Addr{ip("10.0.0.2")}); !errors.Is(err, ErrNodeAddressInUse) {
		t.Error(err)
	}
	if err := CheckCertIPs(ms, "n2", []netip.Addr{ip("10.0.0.2")}); err != nil {
		t.Error(err)
	}
	for _, a := range []string{"0.0.0.0", "::", "224.0.0.1"} {
		if err := CheckCertIPs(ms, "n4", []netip.Addr{ip(a)}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", a, err)
		}
	}
}
