//go:build linux

package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Manager installs and removes the table. It is safe for concurrent use.
type Manager struct {
	log *slog.Logger

	mu        sync.Mutex // guards last and lastIface
	last      Config     // as last applied (Interface as given)
	lastIface string     // the interface last written into the rules; "" when not installed
}

// New returns a Manager; it touches nothing until Apply.
func New(log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{log: log.With("component", "firewall")}
}

// Apply makes the table hold cfg's rules and turns IP forwarding on. It
// reports whether it changed anything; with the table in place and the
// same rules it writes nothing.
func (m *Manager) Apply(cfg Config) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	iface := cfg.Interface
	if iface == "" {
		var err error
		if iface, err = DefaultInterface(); err != nil {
			return false, err
		}
	}
	if err := validIfname(iface); err != nil {
		return false, err
	}
	changed, err := setForwarding(cfg.Pools)
	if err != nil {
		return changed, err
	}
	present, err := tablePresent()
	if err != nil {
		return changed, err
	}
	if present && m.lastIface == iface && m.last.Equal(cfg) {
		return changed, nil
	}
	if err := install(iface, cfg.Pools); err != nil {
		return changed, err
	}
	m.last, m.lastIface = cfg, iface
	m.log.Info("NAT installed", "interface", iface, "pools", cfg.Pools)
	return true, nil
}

// Remove deletes the table; it reports whether there was one.
func (m *Manager) Remove() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	removed, err := removeTable()
	if err != nil {
		return false, err
	}
	m.last, m.lastIface = Config{}, ""
	if removed {
		m.log.Info("NAT removed")
	}
	return removed, nil
}

// Cleanup deletes the table if it is there, and says so.
func Cleanup() ([]string, error) {
	removed, err := removeTable()
	if err != nil || !removed {
		return nil, err
	}
	return []string{"nftables table inet " + TableName}, nil
}

func removeTable() (bool, error) {
	present, err := tablePresent()
	if err != nil || !present {
		return false, err
	}
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: TableName})
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("nftables: delete table %s: %w", TableName, err)
	}
	return true, nil
}

func tablePresent() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// install replaces the table with one holding the rules for iface and
// pools, in one transaction: no moment without NAT, none with two tables.
func install(iface string, pools []netip.Prefix) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	// Add (a no-op when present), delete, add: the table starts empty.
	c.AddTable(t)
	c.DelTable(t)
	t = c.AddTable(t)
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	for _, p := range pools {
		p = p.Masked()
		// oifname IFACE ip[6] saddr POOL masquerade
		masq := append([]expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameBytes(iface)},
		}, matchPrefix(p, true)...)
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(masq, &expr.Counter{}, &expr.Masq{})})
		// ip[6] saddr POOL accept; ip[6] daddr POOL accept
		for _, src := range []bool{true, false} {
			e := append(matchPrefix(p, src), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept})
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: e})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: install table %s: %w", TableName, err)
	}
	return nil
}

// matchPrefix matches the packet's source (or destination) address
// against p, in an inet table (so it matches the family first).
func matchPrefix(p netip.Prefix, src bool) []expr.Any {
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if p.Addr().Is6() {
		proto, off, n = byte(unix.NFPROTO_IPV6), 8, 16
	}
	if !src {
		off += n
	}
	mask := make([]byte, n)
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
	}
}

// ifnameBytes is an interface name as the kernel compares it: IFNAMSIZ
// bytes, zero-padded.
func ifnameBytes(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func validIfname(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ || strings.ContainsAny(name, "/ \t\n\x00") {
		return fmt.Errorf("NAT interface %q is not a valid interface name", name)
	}
	return nil
}

// DefaultInterface is the interface of the IPv4 default route with the
// lowest metric (of the IPv6 one when there is no IPv4 default route).
func DefaultInterface() (string, error) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return "", fmt.Errorf("list routes: %w", err)
		}
		best, idx := -1, 0
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			li := r.LinkIndex
			if li == 0 && len(r.MultiPath) > 0 {
				li = r.MultiPath[0].LinkIndex
			}
			if li != 0 && (best < 0 || r.Priority < best) {
				best, idx = r.Priority, li
			}
		}
		if best >= 0 {
			l, err := netlink.LinkByIndex(idx)
			if err != nil {
				return "", fmt.Errorf("default route's interface: %w", err)
			}
			return l.Attrs().Name, nil
		}
	}
	return "", ErrNoDefaultRoute
}

// Forwarding sysctls, written through /proc/sys.
const (
	ipv4Forward = "/proc/sys/net/ipv4/ip_forward"
	ipv6Forward = "/proc/sys/net/ipv6/conf/all/forwarding"
)

// setForwarding turns on IPv4 forwarding, and IPv6 forwarding when a pool
// is IPv6; it reports whether it changed one.
func setForwarding(pools []netip.Prefix) (bool, error) {
	files := []string{ipv4Forward}
	for _, p := range pools {
		if p.Addr().Is6() {
			files = append(files, ipv6Forward)
			break
		}
	}
	changed := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return changed, fmt.Errorf("IP forwarding: %w", err)
		}
		if string(bytes.TrimSpace(b)) == "1" {
			continue
		}
		if err := os.WriteFile(f, []byte("1\n"), 0o644); err != nil {
			return changed, fmt.Errorf("IP forwarding: %w", err)
		}
		changed = true
	}
	return changed, nil
}
