package netlab

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func birdTestConfig() BIRDConfig {
	return BIRDConfig{
		RouterID: netip.MustParseAddr("192.0.2.254"),
		ASN:      65000,
		Neighbors: []BGPNeighbor{
			{Name: "s1", Addr: netip.MustParseAddr("192.0.2.1"), ASN: 65001},
			{Name: "s2", Addr: netip.MustParseAddr("192.0.2.2"), ASN: 65002},
		},
		HoldTime: 9 * time.Second,
		Accept:   netip.MustParsePrefix("203.0.113.0/24"),
	}
}

func TestBIRDConf(t *testing.T) {
	conf, err := birdTestConfig().Conf()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"router id 192.0.2.254;\n",
		"protocol kernel { ipv4 { import none; export all; }; }\n",
		"protocol bgp s1 {\n\tlocal 192.0.2.254 as 65000;\n\tneighbor 192.0.2.1 as 65001;\n\thold time 9;\n",
		"protocol bgp s2 {\n\tlocal 192.0.2.254 as 65000;\n\tneighbor 192.0.2.2 as 65002;\n",
		"if net ~ [ 203.0.113.0/24{32,32} ] then accept; reject; }; export none; };\n}\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("missing %q in:\n%s", want, conf)
		}
	}
	for name, mod := range map[string]func(*BIRDConfig){
		"IPv6 router id":       func(c *BIRDConfig) { c.RouterID = netip.MustParseAddr("2001:db8::1") },
		"no AS":                func(c *BIRDConfig) { c.ASN = 0 },
		"no neighbour":         func(c *BIRDConfig) { c.Neighbors = nil },
		"bad name":             func(c *BIRDConfig) { c.Neighbors[0].Name = "s-1" },
		"neighbour without AS": func(c *BIRDConfig) { c.Neighbors[1].ASN = 0 },
		"short hold time":      func(c *BIRDConfig) { c.HoldTime = 2 * time.Second },
		"fractional hold":      func(c *BIRDConfig) { c.HoldTime = 3500 * time.Millisecond },
		"IPv6 accept":          func(c *BIRDConfig) { c.Accept = netip.MustParsePrefix("2001:db8::/32") },
	} {
		c := birdTestConfig()
		mod(&c)
		if _, err := c.Conf(); err == nil {
			t.Errorf("%s: Conf accepted %+v", name, c)
		}
	}
}

func TestParseBIRDRoutes(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Table master4:
203.0.113.10/32      unicast [s2 03:01:02.345 from 192.0.2.2] * (100) [AS65001i]
	via 192.0.2.2 on eth0
                     unicast [s1 03:01:00.123] (100) [AS65001i]
	via 192.0.2.1 on eth0
`
	hops, best := parseBIRDRoutes(out)
	if want := []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.1")}; !slices.Equal(hops, want) || best != want[0] {
		t.Errorf("parseBIRDRoutes = %v, %v; want %v, %v", hops, best, want, want[0])
	}
	hops, best = parseBIRDRoutes("BIRD 2.0.12 ready.\nNetwork not found\n")
	if len(hops) != 0 || best.IsValid() {
		t.Errorf("no route: parseBIRDRoutes = %v, %v", hops, best)
	}
}

func TestParseBIRDSessions(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     03:08:40.061  
kernel1    Kernel     master4    up     03:08:40.061  
s1         BGP        ---        start  03:10:42.104  Active        Socket: Connection refused
s2         BGP        ---        up     03:08:44.441  Established   
`
	got := parseBIRDSessions(out)
	want := map[string]string{"s1": "Active Socket: Connection refused", "s2": "Established"}
	if len(got) != len(want) || got["s1"] != want["s1"] || got["s2"] != want["s2"] {
		t.Errorf("parseBIRDSessions = %q, want %q", got, want)
	}
}

// TestMoveBehind: a host moved behind a router reaches the switch's hosts
// through it only, and its link flaps with LinkDown and LinkUp.
func TestMoveBehind(t *testing.T) {
	l := newLab(t, "ping")
	s, err := l.AddHost("s", netip.MustParsePrefix("192.0.2.1/24"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.AddHost("r", netip.MustParsePrefix("192.0.2.254/24"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.AddHost("c", netip.MustParsePrefix("203.0.113.130/25"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParsePrefix("203.0.113.129/25")
	if err := c.MoveBehind(c, "eth1", gw); err == nil {
		t.Error("MoveBehind onto itself succeeded")
	}
	if err := c.MoveBehind(r, "eth1", netip.MustParsePrefix("192.0.2.253/24")); err == nil {
		t.Error("MoveBehind with a gateway off the host's network succeeded")
	}
	if err := c.MoveBehind(r, "eth1", gw); err != nil {
		t.Fatal(err)
	}
	if err := c.MoveBehind(r, "eth2", gw); err == nil {
		t.Error("a second MoveBehind succeeded")
	}
	if err := s.AddRoute(netip.MustParsePrefix("203.0.113.128/25"), r.IPv4().Addr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "ping c -> s through r", func() error { return ping(c, s.IPv4()) })
	eventually(t, 10*time.Second, "ping s -> c through r", func() error { return ping(s, c.IPv4()) })
	if err := c.LinkDown(); err != nil {
		t.Fatal(err)
	}
	if err := ping(c, s.IPv4()); err == nil {
		t.Error("ping c -> s succeeded with c's link down")
	}
	if err := c.LinkUp(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "ping c -> s after LinkUp", func() error { return ping(c, s.IPv4()) })
}

// TestStartBIRD: BIRD starts with a rendered configuration and answers on
// its socket; with no session up it holds no route.
func TestStartBIRD(t *testing.T) {
	l := newLab(t, "bird", "birdc")
	r, err := l.AddHost("r", netip.MustParsePrefix("192.0.2.254/24"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.StartBIRD(t.TempDir(), birdTestConfig(), StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hops, best, err := b.NextHops(context.Background(), netip.MustParseAddr("203.0.113.10"))
	if err != nil || len(hops) != 0 || best.IsValid() {
		t.Errorf("NextHops = %v, %v, %v; want none", hops, best, err)
	}
	sessions, err := b.Sessions(context.Background())
	if err != nil || len(sessions) != 2 || sessions["s1"] == "" || strings.HasPrefix(sessions["s1"], "Established") {
		t.Errorf("Sessions = %q, %v; want s1 and s2, not established", sessions, err)
	}
	if err := b.Proc().Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Error(err)
	}
}
