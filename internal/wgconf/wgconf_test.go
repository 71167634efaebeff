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
	// A name comment just before [Peer] names that peer, one inside the
	// section too; names become valid peer names.
	want := []string{
		"alice [10.8.0.2/32 fd42::2/128] [] psk=true",
		"branch-office [10.8.0.3/32] [192.168.50.0/24] psk=false",
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

// TestNames: the name comments the usual tools write, cleaned up and made
// unique; a peer without one is peer-N.
func TestNames(t *testing.T) {
	conf := `[Interface]
PrivateKey = cHJpdmF0ZWtleXByaXZhdGVrZXlwcml2YXRla2V5MDA=
Address = 10.8.0.1/24

# Client: Alice's phone (3f1c9a2e-8b1d-4c1e-9a52-0c5b8d7e6f10)
[Peer]
PublicKey = a
AllowedIPs = 10.8.0.2/32

### Client bob
[Peer]
PublicKey = b
AllowedIPs = 10.8.0.3/32
### end bob ###

### begin carol ###
[Peer]
PublicKey = c
AllowedIPs = 10.8.0.4/32

[Peer]
# ID: 17
# Name: bob
# Email: bob@example.com
PublicKey = d
AllowedIPs = 10.8.0.5/32

[Peer]
PublicKey = e
AllowedIPs = 10.8.0.6/32
# Name = ++
`
	c, err := Parse(strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Peers {
		got = append(got, p.Name)
	}
	if want := "Alice-s-phone bob carol bob-2 peer-5"; strings.Join(got, " ") != want {
		t.Fatalf("names %q, want %q", got, want)
	}
}

// TestParseErrorsHideSecrets: a malformed line is reported by its number,
// never by its text (which may hold a key).
func TestParseErrorsHideSecrets(t *testing.T) {
	_, err := Parse(strings.NewReader("[Interface]\nPrivateKey cHJpdmF0ZWtleXByaXZhdGVrZXlwcml2YXRla2V5MDA=\n"))
	if err == nil || strings.Contains(err.Error(), "cHJp") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v", err)
	}
}
