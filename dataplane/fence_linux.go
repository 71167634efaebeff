//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The source fence of the kernel device.
//
// A kernel WireGuard link outlives a frozen process and, until `raftguard
// cleanup` runs, a killed one: up and keyed, its timers still running. Once
// the VIP lease has expired, what it sends on its own (a keepalive, the
// handshake it initiates about 15 s after it last sent data without an
// answer) still follows the source table. IPv6 routes there lose their
// preferred source with the address, so the packet would leave from the
// node's own address, and a client that answers roams there, to a node that
// is no longer the leader. IPv4 routes keep naming the VIP (the kernel
// deletes routes whose preferred source went away only from the main
// table), so the packet would leave from the VIP the node no longer holds,
// where clients take it for the leader's.
//
// So every packet carrying the device's firewall mark may leave only from a
// VIP of its family, and only while that VIP is an address of the node: an
// nftables table of our own (fenceTable) drops the others in the output
// hook. The kernel enforces it whatever the process does, so a dead or
// frozen former leader cannot reach a client once its VIP is gone. The
// table is installed with the device's source addresses (on every node,
// leader or not) and removed by Close and Cleanup.

// fenceTable is the nftables table (family inet) of the source fence.
const fenceTable = "raftguard_fence"

// syncFence installs the source fence for sources (the VIPs), replacing
// what was there, or removes it when sources is empty. It reports whether
// anything changed: the table is rewritten only when its sources differ
// from the last ones installed (last).
func syncFence(sources, last []netip.Addr) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("source fence: open nftables: %w", err)
	}
	defer c.CloseLasting()
	exists, err := fenceExists(c)
	if err != nil {
		return false, err
	}
	if len(sources) == 0 {
		if !exists {
			return false, nil
		}
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: fenceTable})
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("source fence: remove table %s: %w", fenceTable, err)
		}
		return true, nil
	}
	if exists && slices.Equal(sources, last) {
		return false, nil
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: fenceTable}
	// Add then delete then add: one transaction that replaces the table
	// whether or not it was there.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name:     "output",
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &accept,
	})
	for _, r := range fenceRules(sources) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("source fence: install table %s: %w", fenceTable, err)
	}
	return true, nil
}

// fenceExists reports whether the fence table is there.
func fenceExists(c *nftables.Conn) (bool, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("source fence: list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == fenceTable {
			return true, nil
		}
	}
	return false, nil
}

// fenceRules are the rules of the fence's output chain: for each family,
// a packet with the device's mark whose source is not that family's first
// source address is dropped (all of the family's marked packets when it has
// no source address: the device has no business there), and so is one
// whose source is not a local address (fib saddr type != local): the VIP
// after its lease expired.
func fenceRules(sources []netip.Addr) [][]expr.Any {
	var rules [][]expr.Any
	for _, fam := range []struct {
		proto       byte
		offset, len uint32
		is4         bool
	}{
		{unix.NFPROTO_IPV4, 12, 4, true},  // IPv4 header: source at 12
		{unix.NFPROTO_IPV6, 8, 16, false}, // IPv6 header: source at 8
	} {
		marked := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(sourceMark)},
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam.proto}},
		}
		r := slices.Clone(marked)
		hasSource := false
		for _, a := range sources {
			if a.Is4() == fam.is4 {
				r = append(r,
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.offset, Len: fam.len},
					&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: a.AsSlice()},
				)
				hasSource = true
				break
			}
		}
		r = append(r, &expr.Verdict{Kind: expr.VerdictDrop})
		rules = append(rules, r)
		if hasSource {
			// fib saddr type != local: the source (the VIP) is not an
			// address of this node (any more).
			rules = append(rules, append(marked,
				&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
				&expr.Verdict{Kind: expr.VerdictDrop},
			))
		}
	}
	return rules
}
