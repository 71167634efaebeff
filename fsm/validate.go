package fsm

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
)

// MaxNameLen is the longest peer or node name, in bytes.
const MaxNameLen = 64

// ValidateName checks a peer or node name: 1 to 64 bytes of letters, digits
// and . _ - @ +, starting with a letter or digit. Names appear in URL paths,
// so slashes, spaces and control characters are refused.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: name is empty", ErrInvalid)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: name is %d bytes, at most %d allowed", ErrInvalid, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-' || c == '@' || c == '+'):
		default:
			return fmt.Errorf("%w: name %q: character %q at byte %d is not allowed (use letters, digits and . _ - @ +, starting with a letter or digit)", ErrInvalid, name, rune(c), i)
		}
	}
	return nil
}

// KeyLen is the length of a WireGuard key in bytes.
const KeyLen = 32

// ParseKey decodes a base64 WireGuard key (public, private or preshared) and
// refuses wrong lengths, non-canonical spellings and the all-zero key. The
// error never echoes the input, which may be a secret.
func ParseKey(s string) ([KeyLen]byte, error) {
	var k [KeyLen]byte
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return k, fmt.Errorf("%w: key is not valid base64", ErrInvalid)
	}
	if len(b) != KeyLen {
		return k, fmt.Errorf("%w: key is %d bytes, want %d", ErrInvalid, len(b), KeyLen)
	}
	// The decoder skips line breaks: refuse them, so that a key has one
	// spelling (peers are matched by key string) and fits on one line of
	// a WireGuard config.
	if base64.StdEncoding.EncodeToString(b) != s {
		return k, fmt.Errorf("%w: key is not canonical base64 (44 characters, no line breaks)", ErrInvalid)
	}
	copy(k[:], b)
	if k == ([KeyLen]byte{}) {
		return k, fmt.Errorf("%w: key is all zeros", ErrInvalid)
	}
	return k, nil
}

// ValidateKey is ParseKey for callers that need only the check.
func ValidateKey(s string) error {
	_, err := ParseKey(s)
	return err
}

// ParsePrefix parses a CIDR that must be canonical (no host bits set) and
// carry no IPv6 zone. IPv4-mapped IPv6 prefixes are refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%w: %q: IPv6 zones are not allowed", ErrInvalid, s)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not a CIDR prefix", ErrInvalid, s)
	}
	return p, CheckPrefix(p)
}

// CheckPrefix reports whether p is a valid canonical prefix without a zone.
func CheckPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: invalid prefix", ErrInvalid)
	}
	if p.Addr().Zone() != "" {
		return fmt.Errorf("%w: %s: IPv6 zones are not allowed", ErrInvalid, p)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("%w: %s: IPv4-mapped IPv6 addresses are not allowed", ErrInvalid, p)
	}
	if p.Masked() != p {
		return fmt.Errorf("%w: %s is not canonical (did you mean %s?)", ErrInvalid, p, p.Masked())
	}
	return nil
}

// ParseHostAddress parses a peer tunnel address: a plain address or a
// single-host prefix (/32 or /128). It returns the single-host prefix.
func ParseHostAddress(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%w: %q: IPv6 zones are not allowed", ErrInvalid, s)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: %q is not an address", ErrInvalid, s)
		}
		if !p.IsSingleIP() {
			return netip.Prefix{}, fmt.Errorf("%w: %q: a peer address must be a single host (/32 or /128)", ErrInvalid, s)
		}
		return p, CheckPrefix(p)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not an address", ErrInvalid, s)
	}
	p := netip.PrefixFrom(a, a.BitLen())
	return p, CheckPrefix(p)
}
