package fsm

import (
	"fmt"
	"net/netip"
)

// ServerPools derives the pools of a cluster that takes over a server
// whose tunnel addresses are addrs (a wg-quick config's Address): one
// IPv4 and at most one IPv6 address, each the first host of its network,
// which is the address the cluster's server takes (ServerAddresses).
func ServerPools(addrs []netip.Prefix) (pool, pool6 netip.Prefix, err error) {
	for _, a := range addrs {
		if err := CheckPrefix(a.Masked()); err != nil {
			return pool, pool6, fmt.Errorf("server address: %w", err)
		}
		if a.Addr().BitLen()-a.Bits() < 2 {
			return pool, pool6, fmt.Errorf("%w: the server address %s names no network of peers (at most /%d)", ErrInvalid, a, a.Addr().BitLen()-2)
		}
		net := a.Masked()
		if first := net.Addr().Next(); a.Addr() != first {
			return pool, pool6, fmt.Errorf("%w: the server address %s is not the first host of %s: the cluster's server takes %s; "+
				"change Address to %s in the file if no client uses the server's tunnel address (as DNS server, say), else renumber first",
				ErrInvalid, a, net, first, netip.PrefixFrom(first, a.Bits()))
		}
		target := &pool
		if a.Addr().Is6() {
			target = &pool6
		}
		if target.IsValid() {
			return pool, pool6, fmt.Errorf("%w: two server addresses of one family (%s and %s); the cluster has one pool per family", ErrInvalid, *target, a)
		}
		*target = net
	}
	if !pool.IsValid() {
		return pool, pool6, fmt.Errorf("%w: no IPv4 server address: the cluster needs an IPv4 pool", ErrInvalid)
	}
	return pool, pool6, nil
}

// CheckImport answers what a new cluster with settings st would answer to
// c, before the cluster exists: the settings by the rules Init applies,
// then every peer by AddPeer's rules with the ones before it added, as in
// CheckAddPeers. Up to MaxCheckPeers peers.
func CheckImport(st Settings, c AddPeers) (AddPeersResult, error) {
	if err := ValidateSettings(&st); err != nil {
		return AddPeersResult{}, fmt.Errorf("cluster settings: %w", err)
	}
	s := newState()
	s.settings, s.initialized, s.version = st, true, ProtocolVersion
	s.rebuildStatic()
	return s.addPeers(c, MaxCheckPeers)
}
