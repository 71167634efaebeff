package wgconf

import (
	"fmt"
	"strings"
	"testing"
)

const serverConf = `[Interface]
PrivateKey = cHJpdmF0ZWtleXByaXZhdGVrZXlwcml2YXRla2V5MDA=
Address = 10.8.0.1/24, fd42::1/64
ListenPort = 51821
PostUp = iptables -A FORWARD -i wg0 -j ACCEPT

# Name = alice
[Peer]
PublicKey = YWxpY2VhbGljZWFsaWNlYWxpY2VhbGljZWFsaWNlMDA=
PresharedKey = cHNrcHNrcHNrcHNrcHNrcHNrcHNrcHNrcHNrcHNrMDA=
AllowedIPs = 10.8.0.2/32, fd42::2/128

[Peer]
# Name = branch office
PublicKey = YnJhbmNoYnJhbmNoYnJhbmNoYnJhbmNoYnJhbmNoMDA=
AllowedIPs = 10.8.0.3/32, 192.168.50.0/24 # the office LAN

[Peer]
PublicKey = bm9uYW1lbm9uYW1lbm9uYW1lbm9uYW1lbm9uYW1lMDA=
AllowedIPs = 10.8.0.4/32
`

func TestParse(t *testing.T) {
	c, err := Parse(strings.NewReader(serverConf))
	if err != nil {
		t.Fatal(err)
	}
	if c.Interface.ListenPort != 51821 || fmt.Sprint(c.Interface.Addresses) != "[10.8.0.1/24 fd42::1/64]" || !strings.HasPrefix(c.Interface.PrivateKey, "cHJp") {
		t.Fatalf("interface %+v", c.Interface)
	}
	if len(c.Peers) != 3 {
		t.Fatalf("%d peers", len(c.Peers))
	}
	// A "# Name" comment just before [Peer] belongs to the section before;
	// wg-easy writes it inside the section.
	want := []string{
		"peer-1 [10.8.0.2/32 fd42::2/128] [] psk=true",
		"branch office [10.8.0.3/32] [192.168.50.0/24] psk=false",
		"peer-3 [10.8.0.4/32] [] psk=false",
	}
	for i, p := range c.Peers {
		if got := fmt.Sprintf("%s %v %v psk=%v", p.Name, p.Addresses, p.Routes, p.PresharedKey != ""); got != want[i] {
			t.Errorf("peer %d: %s, want %s", i, got, want[i])
		}
	}
	if _, err := Parse(strings.NewReader("[Peer]\nAllowedIPs = nonsense\n")); err == nil {
		t.Fatal("a bad AllowedIPs was accepted")
	}
}
