// Package clientconf renders the wg-quick configuration a client of the
// cluster uses: its own addresses and key, the cluster's shared server key,
// endpoint, DNS, MTU, allowed IPs and keepalive. It is a pure function of
// the replicated settings and one peer; every value in it was validated by
// fsm's rules on its way into the state.
package clientconf

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/raftguard/raftguard/fsm"
)

// Placeholders written for keys the server does not know (or will not show).
const (
	PrivateKeyPlaceholder   = "<client private key>"
	PresharedKeyPlaceholder = "<preshared key given at creation>"
)

// Render renders the wg-quick configuration for peer p. private and psk
// are written when known (at creation), placeholders otherwise.
func Render(set fsm.Settings, p fsm.Peer, private, psk string) string {
	var b strings.Builder
	if private == "" {
		private = PrivateKeyPlaceholder
	}
	fmt.Fprintf(&b, "# raftguard peer %s\n[Interface]\nPrivateKey = %s\n", p.Name, private)
	fmt.Fprintf(&b, "Address = %s\n", joinPrefixes(p.Addresses))
	if len(set.ClientDNS) > 0 {
		fmt.Fprintf(&b, "DNS = %s\n", strings.Join(set.ClientDNS, ", "))
	}
	if set.MTU > 0 {
		fmt.Fprintf(&b, "MTU = %d\n", set.MTU)
	}
	fmt.Fprintf(&b, "\n[Peer]\nPublicKey = %s\n", set.PublicKey)
	switch {
	case psk != "":
		fmt.Fprintf(&b, "PresharedKey = %s\n", psk)
	case p.PresharedKey != "":
		fmt.Fprintf(&b, "PresharedKey = %s\n", PresharedKeyPlaceholder)
	}
	allowed := set.ClientAllowedIPs
	if len(allowed) == 0 {
		allowed = slices.Clone(set.ServerAddresses())
	}
	fmt.Fprintf(&b, "AllowedIPs = %s\nEndpoint = %s\n", joinPrefixes(allowed), set.Endpoint)
	if set.Keepalive > 0 {
		fmt.Fprintf(&b, "PersistentKeepalive = %d\n", set.Keepalive)
	}
	return b.String()
}

func joinPrefixes(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}
