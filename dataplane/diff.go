package dataplane

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// peerState is the device-side configuration of one peer.
type peerState struct {
	psk        wgtypes.Key    // zero: none
	allowedIPs []netip.Prefix // masked, sorted, without duplicates
	endpoint   netip.AddrPort // used only when the peer is created
}

// devState is the WireGuard device configuration the package keeps in
// memory (the last one applied) and diffs against the wanted one. Link
// properties (addresses, MTU, up) are not here: they are read back from the
// kernel on every Set.
type devState struct {
	privateKey  wgtypes.Key
	listenPort  int
	sourceAddrs []netip.Addr // order kept: the first of a family is the default
	peers       map[wgtypes.Key]*peerState
}

// wanted is a validated, canonical Config.
type wanted struct {
	dev       devState
	addresses []netip.Prefix // sorted, without duplicates
	mtu       int
	up        bool
}

// invalidf returns an error wrapping ErrInvalidConfig. Callers never pass a
// private or preshared key to it.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// parseKey decodes a base64 WireGuard key; what names the key in the error
// (the key itself never appears).
func parseKey(what, s string) (wgtypes.Key, error) {
	k, err := wgtypes.ParseKey(s)
	if err != nil {
		return wgtypes.Key{}, invalidf("%s is not 32 bytes of base64", what)
	}
	return k, nil
}

// normalize validates cfg and returns it in canonical form.
func normalize(cfg Config) (*wanted, error) {
	w := &wanted{up: cfg.Up, mtu: cfg.MTU}
	var err error
	if w.dev.privateKey, err = parseKey("private key", cfg.PrivateKey); err != nil {
		return nil, err
	}
	if w.dev.privateKey == (wgtypes.Key{}) {
		return nil, invalidf("private key is all zeros")
	}
	if cfg.ListenPort < 1 || cfg.ListenPort > 65535 {
		return nil, invalidf("listen port %d is not in 1-65535", cfg.ListenPort)
	}
	w.dev.listenPort = cfg.ListenPort
	if w.mtu == 0 {
		w.mtu = DefaultMTU
	}
	if w.mtu < 68 || w.mtu > 65535 {
		return nil, invalidf("MTU %d is not in 68-65535", cfg.MTU)
	}
	for _, p := range cfg.Addresses {
		if !p.IsValid() {
			return nil, invalidf("interface address %v is not a valid prefix", p)
		}
		if p.Addr().Is4In6() {
			return nil, invalidf("interface address %v is IPv4-mapped IPv6; give it as IPv4", p)
		}
		w.addresses = append(w.addresses, p)
	}
	w.addresses = sortPrefixes(w.addresses)
	for _, a := range cfg.SourceAddrs {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return nil, invalidf("source address %v is not a unicast address", a)
		}
		if !slices.Contains(w.dev.sourceAddrs, a) {
			w.dev.sourceAddrs = append(w.dev.sourceAddrs, a)
		}
	}
	w.dev.peers = make(map[wgtypes.Key]*peerState, len(cfg.Peers))
	publicKey := w.dev.privateKey.PublicKey()
	for i, p := range cfg.Peers {
		k, err := wgtypes.ParseKey(p.PublicKey)
		if err != nil {
			return nil, invalidf("peer %d: public key is not 32 bytes of base64", i)
		}
		if _, dup := w.dev.peers[k]; dup {
			return nil, invalidf("peer %d: public key %s appears twice", i, p.PublicKey)
		}
		if k == publicKey {
			return nil, invalidf("peer %d: public key %s is the interface's own", i, p.PublicKey)
		}
		ps := &peerState{}
		if p.PresharedKey != "" {
			if ps.psk, err = parseKey(fmt.Sprintf("peer %s: preshared key", p.PublicKey), p.PresharedKey); err != nil {
				return nil, err
			}
		}
		for _, a := range p.AllowedIPs {
			if !a.IsValid() {
				return nil, invalidf("peer %s: allowed IP %v is not a valid prefix", p.PublicKey, a)
			}
			ps.allowedIPs = append(ps.allowedIPs, a.Masked())
		}
		ps.allowedIPs = sortPrefixes(ps.allowedIPs)
		if p.Endpoint.IsValid() {
			if p.Endpoint.Port() == 0 || p.Endpoint.Addr().IsUnspecified() {
				return nil, invalidf("peer %s: endpoint %v has no address or port", p.PublicKey, p.Endpoint)
			}
			ps.endpoint = netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port())
		}
		w.dev.peers[k] = ps
	}
	return w, nil
}

// comparePrefixes orders prefixes by address, then length.
func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// sortPrefixes sorts ps in place and drops duplicates.
func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, comparePrefixes)
	return slices.Compact(ps)
}

// peerOpKind says what a peerOp does.
type peerOpKind int

const (
	opRemove peerOpKind = iota // remove the peer
	opUpdate                   // change an existing peer (update_only)
	opCreate                   // add a peer
)

func (k peerOpKind) String() string {
	switch k {
	case opRemove:
		return "remove"
	case opUpdate:
		return "update"
	case opCreate:
		return "create"
	}
	return fmt.Sprintf("peerOpKind(%d)", int(k))
}

// peerOp is the change to one peer.
type peerOp struct {
	kind peerOpKind
	key  wgtypes.Key
	// psk is set (non-nil) to give the peer this preshared key (zero clears
	// it): on create when it has one, on update when it changed.
	psk *wgtypes.Key
	// endpoint, on create only, when known.
	endpoint netip.AddrPort
	// setIPs says the allowed IPs change (always on create); allowedIPs is
	// then the whole wanted list, addIPs and delIPs the difference (update).
	setIPs         bool
	allowedIPs     []netip.Prefix
	addIPs, delIPs []netip.Prefix
}

// plan is the difference between two devStates: what Set applies.
type plan struct {
	privateKey  *wgtypes.Key // non-nil: set it
	listenPort  int          // non-zero: set it (rebinds)
	sourceAddrs bool         // the source addresses changed (rebind)
	peers       []peerOp     // removals, then updates, then creations; by key within each
}

// empty reports whether the plan changes nothing.
func (p *plan) empty() bool {
	return p.privateKey == nil && p.listenPort == 0 && !p.sourceAddrs && len(p.peers) == 0
}

// counts returns how many peers the plan removes, updates and creates.
func (p *plan) counts() (removed, updated, created int) {
	for _, op := range p.peers {
		switch op.kind {
		case opRemove:
			removed++
		case opUpdate:
			updated++
		case opCreate:
			created++
		}
	}
	return
}

// diffState computes what turns cur into want. A nil cur is an empty,
// freshly created device.
func diffState(cur, want *devState) *plan {
	if cur == nil {
		cur = &devState{}
	}
	p := &plan{}
	if cur.privateKey != want.privateKey {
		k := want.privateKey
		p.privateKey = &k
	}
	if cur.listenPort != want.listenPort {
		p.listenPort = want.listenPort
	}
	p.sourceAddrs = !slices.Equal(cur.sourceAddrs, want.sourceAddrs)

	var removes, updates, creates []peerOp
	for k := range cur.peers {
		if _, ok := want.peers[k]; !ok {
			removes = append(removes, peerOp{kind: opRemove, key: k})
		}
	}
	for k, w := range want.peers {
		c, ok := cur.peers[k]
		if !ok {
			op := peerOp{kind: opCreate, key: k, endpoint: w.endpoint, setIPs: true, allowedIPs: w.allowedIPs}
			if w.psk != (wgtypes.Key{}) {
				psk := w.psk
				op.psk = &psk
			}
			creates = append(creates, op)
			continue
		}
		op := peerOp{kind: opUpdate, key: k}
		changed := false
		if c.psk != w.psk {
			psk := w.psk
			op.psk = &psk
			changed = true
		}
		if !slices.Equal(c.allowedIPs, w.allowedIPs) {
			op.setIPs = true
			op.allowedIPs = w.allowedIPs
			op.addIPs, op.delIPs = prefixDiff(c.allowedIPs, w.allowedIPs)
			changed = true
		}
		// A differing endpoint is deliberately not a change: the device's
		// live endpoint (learned by roaming) wins over the configured one.
		if changed {
			updates = append(updates, op)
		}
	}
	byKey := func(a, b peerOp) int { return bytes.Compare(a.key[:], b.key[:]) }
	slices.SortFunc(removes, byKey)
	slices.SortFunc(updates, byKey)
	slices.SortFunc(creates, byKey)
	p.peers = slices.Concat(removes, updates, creates)
	return p
}

// prefixDiff returns what to add to and remove from cur (sorted) to get
// want (sorted).
func prefixDiff(cur, want []netip.Prefix) (add, del []netip.Prefix) {
	i, j := 0, 0
	for i < len(cur) || j < len(want) {
		switch {
		case j == len(want):
			del = append(del, cur[i])
			i++
		case i == len(cur):
			add = append(add, want[j])
			j++
		default:
			switch c := comparePrefixes(cur[i], want[j]); {
			case c == 0:
				i++
				j++
			case c < 0:
				del = append(del, cur[i])
				i++
			default:
				add = append(add, want[j])
				j++
			}
		}
	}
	return add, del
}

// applyDiff brings a device from *cur (read with read when unknown) to want:
// apply gets only the difference. *cur is unknown (nil) while apply runs,
// and want once it succeeded. Both backends configure through it.
func applyDiff(cur **devState, want *devState, read func() (*devState, error), apply func(*plan) error, log *slog.Logger, name string) (bool, error) {
	if *cur == nil {
		c, err := read()
		if err != nil {
			return false, err
		}
		*cur = c
	}
	p := diffState(*cur, want)
	if p.empty() {
		return false, nil
	}
	*cur = nil // unknown until everything is applied
	if err := apply(p); err != nil {
		return true, err
	}
	*cur = want
	removed, updated, created := p.counts()
	log.Debug("interface configured", "interface", name,
		"private_key_changed", p.privateKey != nil, "listen_port_changed", p.listenPort != 0,
		"source_addrs_changed", p.sourceAddrs,
		"peers_removed", removed, "peers_updated", updated, "peers_added", created, "peers", len(want.peers))
	return true, nil
}
