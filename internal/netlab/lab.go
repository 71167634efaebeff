package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is returned by a Lab's methods after Close.
var ErrClosed = errors.New("netlab: lab closed")

// ErrUnavailable is returned (wrapped, with the reason) by Available and New
// when the lab cannot run here: not root, not Linux, or a tool missing.
var ErrUnavailable = errors.New("netlab: network lab unavailable")

// LabRanges are the address ranges a lab may use: the IPv4 and IPv6
// documentation ranges (RFC 5737, RFC 3849) and the IPv6 unique local
// range for tunnels. StartWireGuardClient routes only inside them.
var LabRanges = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fd00::/8"),
}

// cmdTimeout bounds each configuration command the lab runs (stretched by
// WaitScale).
const cmdTimeout = 30 * time.Second

// WaitScale stretches every wait of the package (a tool starting, a link
// coming up, a command finishing). A test on a slow machine (make
// test-kernel's VM emulates its CPU) sets it above 1 before building a lab;
// it is read, never written, by the package.
var WaitScale = 1.0

// patience stretches d by WaitScale.
func patience(d time.Duration) time.Duration {
	return time.Duration(float64(d) * max(WaitScale, 1))
}

// wgSocketDir is where wireguard-go puts its control sockets (one
// directory for the whole machine, whatever the namespace).
const wgSocketDir = "/var/run/wireguard"

// bridgeName is the bridge inside the switch namespace.
const bridgeName = "br0"

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Available reports why a lab cannot run on this machine (nil when it
// can): it needs Linux, root, ip and sysctl, and any other tools named
// (nft, wg, wireguard-go, ping, ...). Tests skip with its message.
func Available(tools ...string) error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: needs Linux", ErrUnavailable)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (network namespaces)", ErrUnavailable)
	}
	for _, t := range append([]string{"ip", "sysctl"}, tools...) {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%w: %s not found in PATH", ErrUnavailable, t)
		}
	}
	return nil
}

// A Lab is a switch and the hosts on it. Its methods are safe for
// concurrent use.
type Lab struct {
	id     string // prefix-suffix: the start of every namespace name
	suffix string // random part, also used in interface names
	sw     string // switch namespace

	mu         sync.Mutex       // guards the fields below
	hosts      map[string]*Host // by name
	procs      map[*Proc]bool   // started and not yet reaped by Close
	namespaces []string         // created, in order
	ifnames    []string         // handed out by Name (their WireGuard sockets go on Close)
	nameSeq    int
	closed     bool
}

// New creates a lab: a switch namespace named prefix-SUFFIX-sw holding a
// bridge. prefix is short lower-case letters, digits and dashes.
func New(prefix string) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if !validName.MatchString(prefix) || len(prefix) > 20 {
		return nil, fmt.Errorf("netlab: invalid lab prefix %q (want [a-z0-9-], at most 20 characters)", prefix)
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	suffix := hex.EncodeToString(b)
	l := &Lab{
		id:     prefix + "-" + suffix,
		suffix: suffix,
		hosts:  make(map[string]*Host),
		procs:  make(map[*Proc]bool),
	}
	l.sw = l.id + "-sw"
	if err := l.addNamespace(l.sw); err != nil {
		return nil, err
	}
	err := l.ipBatch(
		[]string{"-n", l.sw, "link", "set", "lo", "up"},
		// No STP (ports forward at once), no multicast snooping (neighbour
		// discovery and announcements flood like on a plain switch).
		[]string{"-n", l.sw, "link", "add", bridgeName, "type", "bridge", "stp_state", "0", "mcast_snooping", "0"},
		[]string{"-n", l.sw, "link", "set", bridgeName, "up"},
	)
	if err != nil {
		l.Close()
		return nil, err
	}
	// The switch is layer 2 only: keep its own IPv6 chatter off the LAN.
	if _, err := l.run(context.Background(), "ip", "netns", "exec", l.sw, "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// ID returns the lab's unique name, the start of all its namespace names.
func (l *Lab) ID() string { return l.id }

// SwitchNamespace returns the name of the switch's namespace.
func (l *Lab) SwitchNamespace() string { return l.sw }

// Name returns a network interface name unique on this machine (at most 15
// characters), made of base (shortened to 6 characters), the lab's suffix
// and a counter. Use it for WireGuard interfaces: wireguard-go's control
// socket lives in one directory for all namespaces. Close removes the
// control sockets of the names handed out.
func (l *Lab) Name(base string) string {
	if len(base) > 6 {
		base = base[:6]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nameSeq++
	n := fmt.Sprintf("%s%s%d", base, l.suffix, l.nameSeq)
	l.ifnames = append(l.ifnames, n)
	return n
}

// ownSocket records that the WireGuard control socket of interface name
// is the lab's to remove on Close.
func (l *Lab) ownSocket(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Contains(l.ifnames, name) {
		l.ifnames = append(l.ifnames, name)
	}
}

// Hosts returns the lab's hosts in no particular order.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Host, 0, len(l.hosts))
	for _, h := range l.hosts {
		out = append(out, h)
	}
	return out
}

// A Host is a network namespace with one LAN interface, eth0, plugged
// into the lab's switch (or, after MoveBehind, into a router host).
type Host struct {
	lab  *Lab
	name string
	ns   string
	v4   netip.Prefix
	v6   netip.Prefix

	// The far end of eth0: a port in the switch namespace, or, after
	// MoveBehind, a link in a router host's namespace. Guarded by lab.mu.
	peerNS, peer string
}

// peerEnd returns the namespace and name of eth0's far end.
func (h *Host) peerEnd() (ns, dev string) {
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	return h.peerNS, h.peer
}

// AddHost creates a host: a namespace named LABID-name with loopback up
// and eth0 plugged into the switch, holding v4 and v6 (either may be the
// zero Prefix for none; v6 is added without duplicate address detection).
// It returns once eth0 is operationally up.
func (l *Lab) AddHost(name string, v4, v6 netip.Prefix) (*Host, error) {
	if !validName.MatchString(name) || len(name) > 20 {
		return nil, fmt.Errorf("netlab: invalid host name %q (want [a-z0-9-], at most 20 characters)", name)
	}
	if v4.IsValid() && !v4.Addr().Is4() || v6.IsValid() && !v6.Addr().Is6() {
		return nil, fmt.Errorf("netlab: host %s: want an IPv4 and an IPv6 prefix, got %v and %v", name, v4, v6)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := l.hosts[name]; dup {
		l.mu.Unlock()
		return nil, fmt.Errorf("netlab: host %s already exists", name)
	}
	h := &Host{lab: l, name: name, ns: l.id + "-" + name, v4: v4, v6: v6, peerNS: l.sw, peer: fmt.Sprintf("p%d", len(l.hosts)+1)}
	l.hosts[name] = h
	l.mu.Unlock()

	if err := l.addNamespace(h.ns); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if _, err := l.run(ctx, "ip", "netns", "exec", h.ns, "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0"); err != nil {
		return nil, err
	}
	cmds := [][]string{
		{"-n", h.ns, "link", "set", "lo", "up"},
		{"-n", h.ns, "link", "add", "eth0", "type", "veth", "peer", "name", h.peer, "netns", l.sw},
		{"-n", l.sw, "link", "set", h.peer, "master", bridgeName},
		{"-n", l.sw, "link", "set", h.peer, "up"},
	}
	if v4.IsValid() {
		cmds = append(cmds, []string{"-n", h.ns, "addr", "add", v4.String(), "dev", "eth0"})
	}
	if v6.IsValid() {
		cmds = append(cmds, []string{"-n", h.ns, "addr", "add", v6.String(), "dev", "eth0", "nodad"})
	}
	cmds = append(cmds, []string{"-n", h.ns, "link", "set", "eth0", "up"})
	if err := l.ipBatch(cmds...); err != nil {
		return nil, err
	}
	// The kernel marks a new link operationally up (and only then
	// readies IPv6 on it) up to a second after it is set up.
	if err := h.waitOperUp(patience(10 * time.Second)); err != nil {
		return nil, err
	}
	return h, nil
}

// Name returns the host's name within the lab.
func (h *Host) Name() string { return h.name }

// Namespace returns the name of the host's network namespace.
func (h *Host) Namespace() string { return h.ns }

// IPv4 returns the IPv4 address given at AddHost (zero if none).
func (h *Host) IPv4() netip.Prefix { return h.v4 }

// IPv6 returns the IPv6 address given at AddHost (zero if none).
func (h *Host) IPv6() netip.Prefix { return h.v6 }

// Command returns a command that runs name inside the host's namespace
// (through `ip netns exec`, which becomes the command: its PID is the
// command's). The lab does not track it: the caller runs and ends it.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// Run runs name inside the host's namespace and returns its combined
// output; the error holds the output too.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	return h.lab.run(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// LinkDown unplugs the host from the switch (from its router after
// MoveBehind): the far end of eth0 goes down and eth0 loses carrier (its
// addresses stay).
func (h *Host) LinkDown() error {
	ns, dev := h.peerEnd()
	return h.lab.ipBatch([]string{"-n", ns, "link", "set", dev, "down"})
}

// LinkUp plugs the host back in and returns once eth0 is operationally up.
func (h *Host) LinkUp() error {
	ns, dev := h.peerEnd()
	if err := h.lab.ipBatch([]string{"-n", ns, "link", "set", dev, "up"}); err != nil {
		return err
	}
	return h.waitOperUp(patience(10 * time.Second))
}

// isolateTables are the nftables tables of Isolate: an inet table for IP
// traffic and a netdev table for everything else on the wire (ARP, and
// frames from packet sockets, which the inet hooks never see).
const isolateInet, isolateNetdev = "netlab_isolate", "netlab_isolate_l2"

// Isolate cuts the host off the LAN with nftables while eth0 stays up:
// every packet in or out of eth0 is dropped. It is idempotent.
func (h *Host) Isolate() error {
	rules := fmt.Sprintf(`table inet %[1]s {}
delete table inet %[1]s
table inet %[1]s {
	chain input { type filter hook input priority -300; iifname "eth0" drop; }
	chain output { type filter hook output priority -300; oifname "eth0" drop; }
	chain forward { type filter hook forward priority -300; iifname "eth0" drop; oifname "eth0" drop; }
}
table netdev %[2]s {}
delete table netdev %[2]s
table netdev %[2]s {
	chain ingress { type filter hook ingress device "eth0" priority -500; policy drop; }
	chain egress { type filter hook egress device "eth0" priority -500; policy drop; }
}
`, isolateInet, isolateNetdev)
	return h.nft(rules)
}

// CutFrom cuts the host off the given addresses only: IP packets on eth0
// from or to any of them are dropped, everything else (other hosts, ARP)
// still passes. A partition between servers that leaves their routers
// reachable. Heal undoes it; it replaces an earlier Isolate or CutFrom.
func (h *Host) CutFrom(addrs ...netip.Addr) error {
	var v4, v6 []string
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	var rules []string
	for _, set := range []struct {
		fam   string
		addrs []string
	}{{"ip", v4}, {"ip6", v6}} {
		if len(set.addrs) == 0 {
			continue
		}
		list := "{ " + strings.Join(set.addrs, ", ") + " }"
		rules = append(rules,
			fmt.Sprintf("chain input_%[1]s { type filter hook input priority -300; iifname \"eth0\" %[1]s saddr %[2]s drop; }", set.fam, list),
			fmt.Sprintf("chain output_%[1]s { type filter hook output priority -300; oifname \"eth0\" %[1]s daddr %[2]s drop; }", set.fam, list))
	}
	return h.nft(fmt.Sprintf("table inet %[1]s {}\ndelete table inet %[1]s\ntable netdev %[2]s {}\ndelete table netdev %[2]s\ntable inet %[1]s {\n\t%[3]s\n}\n",
		isolateInet, isolateNetdev, strings.Join(rules, "\n\t")))
}

// Heal undoes Isolate. It is idempotent.
func (h *Host) Heal() error {
	rules := fmt.Sprintf("table inet %[1]s {}\ndelete table inet %[1]s\ntable netdev %[2]s {}\ndelete table netdev %[2]s\n",
		isolateInet, isolateNetdev)
	return h.nft(rules)
}

// nft loads rules into the host's nftables (atomically).
func (h *Host) nft(rules string) error {
	ctx, cancel := context.WithTimeout(context.Background(), patience(cmdTimeout))
	defer cancel()
	cmd := h.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: nft in %s: %w\n%s", h.ns, err, out)
	}
	return nil
}

// Addrs returns the global and site addresses on the host's eth0 (not
// link-local ones), in the order the kernel lists them (IPv4 first).
func (h *Host) Addrs() ([]netip.Prefix, error) { return h.AddrsOf("eth0") }

// LinkKind returns the kind of the host's link dev as the kernel reports
// it over netlink (IFLA_INFO_KIND: "wireguard", "tun", "veth", ...), as
// `ip -j -d link` lists it.
func (h *Host) LinkKind(dev string) (string, error) {
	out, err := h.lab.run(context.Background(), "ip", "-n", h.ns, "-j", "-d", "link", "show", "dev", dev)
	if err != nil {
		return "", err
	}
	return parseLinkKind([]byte(out))
}

func parseLinkKind(js []byte) (string, error) {
	var links []struct {
		LinkInfo struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(js, &links); err != nil || len(links) != 1 {
		return "", fmt.Errorf("netlab: parsing ip -j -d link: %d links, %v", len(links), err)
	}
	return links[0].LinkInfo.Kind, nil
}

// HasAddr reports whether addr is on the host's eth0.
func (h *Host) HasAddr(addr netip.Addr) (bool, error) {
	ps, err := h.Addrs()
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr() == addr }), nil
}

// operState returns the operational state of link dev in namespace ns.
func (l *Lab) operState(ns, dev string) (string, error) {
	out, err := l.run(context.Background(), "ip", "-n", ns, "-j", "link", "show", "dev", dev)
	if err != nil {
		return "", err
	}
	var links []struct {
		OperState string `json:"operstate"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return "", fmt.Errorf("netlab: parsing ip -j link show %s: %v", dev, err)
	}
	return links[0].OperState, nil
}

// waitOperUp polls until eth0 and its far end are operationally up.
func (h *Host) waitOperUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ns, dev := h.peerEnd()
	for {
		a, err := h.lab.operState(h.ns, "eth0")
		if err != nil {
			return err
		}
		b, err := h.lab.operState(ns, dev)
		if err != nil {
			return err
		}
		if a == "UP" && b == "UP" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: %s: eth0 is %s and its far end %s after %v", h.name, a, b, timeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// addNamespace creates a named namespace and records it for Close.
func (l *Lab) addNamespace(ns string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	_, err := l.run(context.Background(), "ip", "netns", "add", ns)
	return err
}

// ipBatch runs ip commands in order, stopping at the first failure.
func (l *Lab) ipBatch(cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := l.run(context.Background(), "ip", c...); err != nil {
			return err
		}
	}
	return nil
}

// run runs a command to completion (bounded by cmdTimeout) and returns its
// combined output.
func (l *Lab) run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, patience(cmdTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netlab: %s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Close ends every process the lab started that is still running (SIGTERM,
// then SIGKILL after a few seconds), deletes the namespaces it created and
// removes the WireGuard control sockets of the interface names it handed
// out. It is safe to call more than once; later calls do nothing.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := make([]*Proc, 0, len(l.procs))
	for p := range l.procs {
		procs = append(procs, p)
	}
	namespaces := slices.Clone(l.namespaces)
	ifnames := slices.Clone(l.ifnames)
	l.mu.Unlock()

	var (
		errs []error
		wg   sync.WaitGroup
		emu  sync.Mutex
	)
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(syscall.SIGTERM, 5*time.Second); err != nil && !errors.Is(err, ErrKilled) {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()

	// Hosts first, the switch last (the reverse of creation).
	for _, ns := range slices.Backward(namespaces) {
		if _, err := l.run(context.Background(), "ip", "netns", "del", ns); err != nil {
			if exists, lerr := namespaceExists(ns); lerr != nil || exists {
				errs = append(errs, err)
			}
		}
	}
	for _, n := range ifnames {
		if err := os.Remove(filepath.Join(wgSocketDir, n+".sock")); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Namespaces returns the names of the namespaces the lab created.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.namespaces)
}

// namespaceExists reports whether a named network namespace exists.
func namespaceExists(ns string) (bool, error) {
	_, err := os.Stat(filepath.Join("/var/run/netns", ns))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
