package fsm

import (
	"crypto"
	"crypto/ecdh"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// This file holds the rules for every value that reaches a client config,
// the WireGuard interface or a system call: the endpoint, the client DNS
// entries, host names, node addresses, the server key pair, the cluster CA
// and the peers' extra routes. Every path a value arrives by (the API,
// bootstrap flags, a settings change, a snapshot restore, an import) calls
// these functions; nothing else decides what is valid.

// MaxClientDNS is the most DNS entries (servers and search domains) a client
// config carries.
const MaxClientDNS = 16

// MaxAllowedIPs is the most extra routes (allowed IPs) one peer may have.
const MaxAllowedIPs = 256

// MaxHostnameLen is the longest DNS name accepted, in bytes.
const MaxHostnameLen = 253

// ValidateHostname checks a DNS name: labels of letters, digits and inner
// dashes, 1 to 63 bytes each, separated by dots (a trailing dot allowed),
// 253 bytes at most. Nothing else can break a line or a field of a config.
func ValidateHostname(h string) error {
	if h == "" {
		return fmt.Errorf("%w: host name is empty", ErrInvalid)
	}
	if len(h) > MaxHostnameLen {
		return fmt.Errorf("%w: host name is %d bytes, at most %d allowed", ErrInvalid, len(h), MaxHostnameLen)
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("%w: host name %q: each label must be 1 to 63 bytes", ErrInvalid, h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			case c == '-' && i > 0 && i < len(label)-1:
			default:
				return fmt.Errorf("%w: host name %q: use letters, digits, dots and inner dashes", ErrInvalid, printable(h))
			}
		}
	}
	return nil
}

// ValidateEndpoint checks the endpoint written into client configs:
// host:port with a host name, an IPv4 address, or an IPv6 address in
// brackets (no zone), and a port 1-65535 in plain decimal.
func ValidateEndpoint(ep string) error {
	if _, err := validateHostPort(ep); err != nil {
		return fmt.Errorf("endpoint %q: %w", printable(ep), err)
	}
	return nil
}

// ValidateNodeAddr checks a node's Raft or API address, as nodes register
// it and dial it: the same form as an endpoint.
func ValidateNodeAddr(addr string) error {
	if _, err := validateHostPort(addr); err != nil {
		return fmt.Errorf("node address %q: %w", printable(addr), err)
	}
	return nil
}

// validateHostPort checks host:port and returns the host.
func validateHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%w: want host:port (IPv6 in brackets)", ErrInvalid)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return "", fmt.Errorf("%w: the port must be 1-65535", ErrInvalid)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" || a.Is4In6() {
			return "", fmt.Errorf("%w: no IPv6 zones or IPv4-mapped addresses", ErrInvalid)
		}
		if a.Is6() && !strings.HasPrefix(s, "[") {
			return "", fmt.Errorf("%w: an IPv6 address needs brackets", ErrInvalid)
		}
		return host, nil
	}
	if err := ValidateHostname(host); err != nil {
		return "", err
	}
	return host, nil
}

// ValidateClientDNS checks the DNS entries written into client configs:
// each an IP address (no zone) or a search domain, at most MaxClientDNS.
func ValidateClientDNS(entries []string) error {
	if len(entries) > MaxClientDNS {
		return fmt.Errorf("%w: %d DNS entries, at most %d allowed", ErrInvalid, len(entries), MaxClientDNS)
	}
	for _, d := range entries {
		if a, err := netip.ParseAddr(d); err == nil {
			if a.Zone() != "" || a.Is4In6() || a.IsUnspecified() {
				return fmt.Errorf("%w: DNS server %s: want a plain unicast address", ErrInvalid, d)
			}
			continue
		}
		if err := ValidateHostname(d); err != nil {
			return fmt.Errorf("DNS entry %q: want an IP address or a search domain: %w", printable(d), err)
		}
	}
	return nil
}

// ValidateServerKeyPair checks that the WireGuard public key is the one the
// private key yields. The error never holds either key.
func ValidateServerKeyPair(private, public string) error {
	priv, err := ParseKey(private)
	if err != nil {
		return fmt.Errorf("server private key: %w", err)
	}
	if _, err := ParseKey(public); err != nil {
		return fmt.Errorf("server public key: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return fmt.Errorf("%w: server private key is not an X25519 key", ErrInvalid)
	}
	if base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()) != public {
		return fmt.Errorf("%w: the server public key does not belong to the server private key", ErrInvalid)
	}
	return nil
}

// ValidateCAPair checks the cluster CA: a PEM certificate that is a CA, and
// a PEM private key whose public key is the certificate's. The error never
// holds the key.
func ValidateCAPair(certPEM, keyPEM string) error {
	cb, _ := pem.Decode([]byte(certPEM))
	if cb == nil || cb.Type != "CERTIFICATE" {
		return fmt.Errorf("%w: the CA certificate is not a PEM certificate", ErrInvalid)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return fmt.Errorf("%w: the CA certificate does not parse: %v", ErrInvalid, err)
	}
	if !cert.IsCA {
		return fmt.Errorf("%w: the CA certificate is not a CA", ErrInvalid)
	}
	kb, _ := pem.Decode([]byte(keyPEM))
	if kb == nil {
		return fmt.Errorf("%w: the CA key is not PEM", ErrInvalid)
	}
	var key any
	switch kb.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	default:
		return fmt.Errorf("%w: the CA key has an unknown PEM type", ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("%w: the CA key does not parse", ErrInvalid)
	}
	pub, ok := key.(interface{ Public() crypto.PublicKey })
	if !ok {
		return fmt.Errorf("%w: the CA key has no public key", ErrInvalid)
	}
	eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(cert.PublicKey) {
		return fmt.Errorf("%w: the CA key does not belong to the CA certificate", ErrInvalid)
	}
	return nil
}

// ValidateTokenText checks a stored token (the join token): 1 to 256
// bytes of letters, digits and . _ -. It is printed and passed on command
// lines, so it never holds white space or control characters.
func ValidateTokenText(tok string) error {
	if tok == "" || len(tok) > 256 {
		return fmt.Errorf("%w: a token must be 1 to 256 bytes", ErrInvalid)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: a token holds only letters, digits and . _ -", ErrInvalid)
		}
	}
	return nil
}

// ValidateTokenHash checks an admin token's stored hash: 64 lowercase hex
// digits (SHA-256).
func ValidateTokenHash(h string) error {
	if err := ValidateFingerprint(h); err != nil {
		return fmt.Errorf("%w: a token hash must be 64 lowercase hex digits", ErrInvalid)
	}
	return nil
}

// printable quotes s for an error message without its control characters.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// reservedRanges are the prefixes no peer route may touch: traffic for them
// must never leave through the tunnel.
var reservedRanges = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "the unspecified/\"this network\" range 0.0.0.0/8"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// RouteContext is what the route rules check a peer's allowed IPs against:
// the cluster's pools and VIPs and the addresses its nodes use.
type RouteContext struct {
	Pool, Pool6 netip.Prefix
	VIPs        []netip.Prefix
	// NodeAddrs are the cluster nodes' own addresses (from their Raft and
	// API addresses).
	NodeAddrs []netip.Addr
}

// ValidatePeerRoutes checks a peer's extra routes (allowed IPs) on top of
// their syntax: at most MaxAllowedIPs; no default route; nothing touching
// loopback, link-local, multicast or the unspecified range; only families
// that have a pool; and nothing covering a node's own address or a VIP
// (on the leader such a route would send the cluster's own traffic into
// the tunnel).
func ValidatePeerRoutes(rc RouteContext, routes []netip.Prefix) error {
	if len(routes) > MaxAllowedIPs {
		return fmt.Errorf("%w: %d allowed IPs, at most %d per peer", ErrInvalid, len(routes), MaxAllowedIPs)
	}
	for _, r := range routes {
		if err := CheckPrefix(r); err != nil {
			return fmt.Errorf("allowed IPs: %w", err)
		}
		if r.Bits() == 0 {
			return fmt.Errorf("%w: allowed IPs %s is a default route", ErrInvalid, r)
		}
		for _, rr := range reservedRanges {
			if rr.p.Addr().Is4() == r.Addr().Is4() && rr.p.Overlaps(r) {
				return fmt.Errorf("%w: allowed IPs %s touches %s (%s)", ErrInvalid, r, rr.what, rr.p)
			}
		}
		if r.Addr().Is4() && !rc.Pool.IsValid() || r.Addr().Is6() && !rc.Pool6.IsValid() {
			return fmt.Errorf("%w: allowed IPs %s: the cluster has no %s pool", ErrInvalid, r, family(r.Addr()))
		}
		for _, v := range rc.VIPs {
			if r.Contains(v.Addr()) {
				return fmt.Errorf("%w: allowed IPs %s covers the VIP %s", ErrOverlap, r, v.Addr())
			}
		}
		for _, a := range rc.NodeAddrs {
			if r.Contains(a) {
				return fmt.Errorf("%w: allowed IPs %s covers the cluster node address %s", ErrOverlap, r, a)
			}
		}
	}
	return nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// NodeAddrs returns the IP addresses in nodes' Raft and API addresses
// (host names are skipped: they cannot be checked without DNS).
func NodeAddrs(nodes []Node) []netip.Addr {
	var out []netip.Addr
	for _, n := range nodes {
		for _, hp := range []string{n.RaftAddr, n.APIAddr} {
			if ap, err := netip.ParseAddrPort(hp); err == nil {
				out = append(out, ap.Addr().Unmap())
			}
		}
	}
	return out
}

// RouteContext returns the context for ValidatePeerRoutes from the current
// state: its pools, VIPs and registered nodes.
func (f *FSM) RouteContext() RouteContext {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.routeContext()
}

func (s *state) routeContext() RouteContext {
	nodes := make([]Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	return RouteContext{Pool: s.settings.Pool, Pool6: s.settings.Pool6, VIPs: s.settings.VIPs, NodeAddrs: NodeAddrs(nodes)}
}

// ValidateSettings checks cluster settings as every path that brings them in
// must (bootstrap, a settings change, an import, a restore): their
// structure and the text written into client configs.
func ValidateSettings(st *Settings) error {
	if err := validateSettingsCore(st); err != nil {
		return err
	}
	return validateClientFields(st)
}

// validateClientFields checks the settings written as text into client
// configs.
func validateClientFields(st *Settings) error {
	if err := ValidateEndpoint(st.Endpoint); err != nil {
		return err
	}
	if err := ValidateClientDNS(st.ClientDNS); err != nil {
		return fmt.Errorf("client DNS: %w", err)
	}
	if len(st.ClientAllowedIPs) > MaxAllowedIPs {
		return fmt.Errorf("%w: %d client allowed IPs, at most %d", ErrInvalid, len(st.ClientAllowedIPs), MaxAllowedIPs)
	}
	return nil
}

// Apply's checks of text fields. Rule 6 of command.go: Apply never gets
// stricter for a command older nodes also apply unless the cluster version
// says every replica applies the same rule. From cluster version
// textRulesSince on, Apply refuses what the admission paths refuse;
// before, it keeps the first release's checks (and the admission paths,
// which run on the proposing leader, refuse the values anyway).
const textRulesSince = 4

func (s *state) checkSettings(st *Settings) error {
	// Older replicas refuse a VIP mode newer than they are: so does every
	// replica until the cluster version says none is left.
	if need, have := VIPModeSince(st.VIPMode), max(s.version, 1); need > have {
		return upgradeRequired("VIP mode "+st.VIPMode, need, have)
	}
	if s.version >= textRulesSince {
		return ValidateSettings(st)
	}
	return validateSettingsCore(st)
}

func (s *state) checkNodeAddrs(c RegisterNode) error {
	if s.version >= textRulesSince {
		for _, a := range []string{c.RaftAddr, c.APIAddr} {
			if err := ValidateNodeAddr(a); err != nil {
				return fmt.Errorf("node %s: %w", c.ID, err)
			}
		}
	}
	if c.RaftAddr == "" || c.APIAddr == "" {
		return fmt.Errorf("%w: node %s needs a Raft and an API address", ErrInvalid, c.ID)
	}
	return nil
}

func (s *state) checkJoinToken(tok string) error {
	if s.version >= textRulesSince {
		if err := ValidateTokenText(tok); err != nil {
			return fmt.Errorf("join token: %w", err)
		}
	}
	if tok == "" {
		return fmt.Errorf("%w: empty join token", ErrInvalid)
	}
	return nil
}
