package fsm

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// The join token admits new nodes; these rules keep it from handing out the
// identity of a member that is still in the cluster. A node's identity is its
// node id, its Raft address and its API address; its certificate names its
// node id, the IP addresses it asked for (its advertised and bound
// addresses), and the VIPs.

var (
	// ErrNodeIDInUse: a join names the node id of a current member.
	ErrNodeIDInUse = errors.New("node id in use")
	// ErrNodeAddressInUse: a join names a Raft or API address, or asks for
	// a certificate naming an IP, that a current member uses.
	ErrNodeAddressInUse = errors.New("node address in use")
)

// Member is a current member as the join rules see it: a server of the
// Raft configuration or a node registered in the state (RaftAddr or
// APIAddr may be empty when only one of them knows the node).
type Member struct {
	ID       string
	RaftAddr string
	APIAddr  string
}

// Members merges the Raft configuration's servers (id -> Raft address)
// with the registered nodes.
func Members(servers map[string]string, nodes []Node) []Member {
	byID := map[string]*Member{}
	var out []*Member
	get := func(id string) *Member {
		if m, ok := byID[id]; ok {
			return m
		}
		m := &Member{ID: id}
		byID[id] = m
		out = append(out, m)
		return m
	}
	for _, n := range nodes {
		m := get(n.ID)
		m.RaftAddr, m.APIAddr = n.RaftAddr, n.APIAddr
	}
	for id, addr := range servers {
		get(id).RaftAddr = addr
	}
	res := make([]Member, len(out))
	for i, m := range out {
		res[i] = *m
	}
	return res
}

// CheckNewNodeID refuses a certificate for id when id is a current member:
// a removed node (or a new one) may join; a live one keeps its identity.
func CheckNewNodeID(members []Member, id string) error {
	for _, m := range members {
		if m.ID == id {
			return fmt.Errorf("%w: node %q is a current member of the cluster; remove it first (raftguard cluster remove %s) or join under another --node-id", ErrNodeIDInUse, id, id)
		}
	}
	return nil
}

// CheckJoinAddrs checks join step two: node id with these addresses. It
// reports same when the member already holds exactly this id and these
// addresses (a retried join, which changes nothing), and refuses an id that
// a member holds with other addresses, or an address another member uses.
func CheckJoinAddrs(members []Member, id, raftAddr, apiAddr string) (same bool, err error) {
	for _, m := range members {
		if m.ID == id {
			if sameAddr(m.RaftAddr, raftAddr) && (m.APIAddr == "" || sameAddr(m.APIAddr, apiAddr)) {
				return true, nil
			}
			return false, fmt.Errorf("%w: node %q is a current member with other addresses; remove it first", ErrNodeIDInUse, id)
		}
	}
	for _, m := range members {
		for _, a := range []string{raftAddr, apiAddr} {
			if sameAddr(m.RaftAddr, a) || sameAddr(m.APIAddr, a) {
				return false, fmt.Errorf("%w: %s is an address of node %q", ErrNodeAddressInUse, a, m.ID)
			}
		}
	}
	return false, nil
}

// CheckCertIPs checks the IP addresses a joining node asks its certificate
// to name: no unspecified or multicast address, and none that another
// member uses in its Raft or API address. Loopback addresses are the
// exception: nodes sharing one host (development, tests) share them, and
// only that host reaches them.
func CheckCertIPs(members []Member, id string, ips []netip.Addr) error {
	taken := map[netip.Addr]string{}
	for _, m := range members {
		if m.ID == id {
			continue
		}
		for _, a := range NodeAddrs([]Node{{RaftAddr: m.RaftAddr, APIAddr: m.APIAddr}}) {
			taken[a] = m.ID
		}
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ip.Zone() != "" {
			return fmt.Errorf("%w: %s cannot be named in a node certificate", ErrInvalid, ip)
		}
		if ip.IsLoopback() {
			continue
		}
		if owner, ok := taken[ip]; ok {
			return fmt.Errorf("%w: %s is an address of node %q; a certificate names only the node's own addresses and the VIPs", ErrNodeAddressInUse, ip, owner)
		}
	}
	return nil
}

// sameAddr compares two host:port addresses: IP addresses by value, host
// names without case or a trailing dot.
func sameAddr(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	pa, errA := netip.ParseAddrPort(a)
	pb, errB := netip.ParseAddrPort(b)
	if errA == nil && errB == nil {
		return pa.Addr().Unmap() == pb.Addr().Unmap() && pa.Port() == pb.Port()
	}
	norm := func(s string) string { return strings.ToLower(strings.Replace(s, ".:", ":", 1)) }
	return norm(a) == norm(b)
}
