package agent

import (
	"strings"
	"testing"
)

// The endpoint and DNS servers are written into every client config: a
// value that could break a line (and add, say, a PostUp command) or is not
// an address is refused at bootstrap.
func TestSettingsFromFlagsRefusesBadEndpointAndDNS(t *testing.T) {
	base := ClusterFlags{VIPs: []string{"192.0.2.10/24"}}
	good := []struct{ endpoint, dns string }{
		{"vpn.example.com:51820", "192.0.2.53"},
		{"192.0.2.10:51820", "2001:db8::53,corp.example"},
		{"[2001:db8::10]:51820", ""},
		{"", "example"},
	}
	for _, g := range good {
		c := base
		c.Endpoint = g.endpoint
		if g.dns != "" {
			c.ClientDNS = []string{g.dns}
		}
		s, err := settingsFromFlags(c)
		if err != nil {
			t.Errorf("endpoint %q dns %q: %v", g.endpoint, g.dns, err)
			continue
		}
		if g.endpoint == "" && s.Endpoint != "192.0.2.10:51820" {
			t.Errorf("default endpoint %q", s.Endpoint)
		}
	}
	for _, ep := range []string{"vpn\nPostUp = touch /tmp/x:51820", "vpn.example.com", "vpn.example.com:0", "vpn.example.com:70000",
		"vpn.example.com:+1", "2001:db8::10:51820", "[fe80::1%eth0]:51820", "a b:51820", "-bad.example:51820"} {
		c := base
		c.Endpoint = ep
		if _, err := settingsFromFlags(c); err == nil || !strings.Contains(err.Error(), "--endpoint") {
			t.Errorf("endpoint %q accepted (err %v)", ep, err)
		}
	}
	for _, dns := range []string{"1.1.1.1\nPostUp = x", "a b", "bad_name", "[::1]"} {
		c := base
		c.ClientDNS = []string{dns}
		if _, err := settingsFromFlags(c); err == nil || !strings.Contains(err.Error(), "--client-dns") {
			t.Errorf("dns %q accepted (err %v)", dns, err)
		}
	}
}

func TestNATFlagAndWarning(t *testing.T) {
	s, err := settingsFromFlags(ClusterFlags{VIPs: []string{"192.0.2.10/24"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.NAT || NATWarning(s) == "" {
		t.Fatalf("default settings: NAT %v, warning %q (want off, with a warning)", s.NAT, NATWarning(s))
	}
	s, err = settingsFromFlags(ClusterFlags{VIPs: []string{"192.0.2.10/24"}, NAT: true})
	if err != nil || !s.NAT || NATWarning(s) != "" {
		t.Fatalf("--nat: NAT %v, warning %q, %v", s.NAT, NATWarning(s), err)
	}
	s, err = settingsFromFlags(ClusterFlags{VIPs: []string{"192.0.2.10/24"}, ClientAllowedIPs: []string{"10.0.0.0/8"}})
	if err != nil || NATWarning(s) != "" {
		t.Fatalf("split tunnel: warning %q, %v", NATWarning(s), err)
	}
}
