package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/raftguard/raftguard/internal/wgconf"
)

var validIfName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ErrNoPeer is returned by WGClient.Endpoint and LatestHandshake when the
// interface does not have exactly one peer.
var ErrNoPeer = errors.New("netlab: WireGuard interface has not exactly one peer")

// A WGClient is a WireGuard interface in a host, run by Debian's
// wireguard-go and configured with wg and ip.
type WGClient struct {
	host   *Host
	name   string
	proc   *Proc
	addrs  []netip.Prefix
	routes []netip.Prefix

	closeOnce sync.Once
	closeErr  error
}

// StartWireGuardClient brings up a WireGuard interface in the host from a
// wg-quick configuration, without wg-quick: wireguard-go creates the
// interface (named ifname, or a name from Lab.Name when ifname is empty:
// the name must be unique on the machine), `wg setconf` loads the
// configuration stripped of wg-quick's own keys, and ip adds the Address
// lines, the MTU (1420 if none) and routes.
//
// Routes go only inside LabRanges, never a default route: an AllowedIPs
// range inside a lab range is routed as it is, a wider one (0.0.0.0/0, say)
// is narrowed to the lab ranges it holds. A route as wide as or wider than
// the host's own LAN prefix, or holding a peer's endpoint, is left out.
// DNS and the Pre/Post hooks are ignored. It works as well for a server's
// configuration (ListenPort, several peers).
func (h *Host) StartWireGuardClient(ifname, wgQuickConfig string) (*WGClient, error) {
	cfg, err := parseWGQuick(wgQuickConfig)
	if err != nil {
		return nil, err
	}
	if ifname == "" {
		ifname = h.lab.Name("wg")
	}
	if len(ifname) > 15 || !validIfName.MatchString(ifname) {
		return nil, fmt.Errorf("netlab: invalid interface name %q", ifname)
	}
	h.lab.ownSocket(ifname)
	proc, err := h.StartWith(StartOptions{Env: []string{"WG_PROCESS_FOREGROUND=1"}}, "wireguard-go", "-f", ifname)
	if err != nil {
		return nil, err
	}
	c := &WGClient{host: h, name: ifname, proc: proc, addrs: cfg.addrs}
	if err := c.setup(cfg); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

func (c *WGClient) setup(cfg *wgQuick) error {
	h := c.host
	ctx := context.Background()
	// Wait for wireguard-go's interface and control socket.
	sock := filepath.Join(wgSocketDir, c.name+".sock")
	deadline := time.Now().Add(patience(10 * time.Second))
	for {
		_, statErr := os.Stat(sock)
		if statErr == nil && h.lab.linkExists(h.ns, c.name) {
			break
		}
		if c.proc.Exited() {
			return fmt.Errorf("netlab: wireguard-go %s exited: %v\n%s", c.name, c.proc.Wait(), c.proc.Output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: wireguard-go did not create %s within %v\n%s", c.name, patience(10*time.Second), c.proc.Output())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}

	f, err := os.CreateTemp("", "netlab-wg-*.conf") // 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(cfg.setconf)
	if err := errors.Join(werr, f.Close()); err != nil {
		return err
	}
	if _, err := h.Run(ctx, "wg", "setconf", c.name, f.Name()); err != nil {
		return err
	}

	var cmds [][]string
	for _, a := range cfg.addrs {
		cmd := []string{"-n", h.ns, "addr", "add", a.String(), "dev", c.name}
		if a.Addr().Is6() {
			cmd = append(cmd, "nodad")
		}
		cmds = append(cmds, cmd)
	}
	mtu := cfg.mtu
	if mtu == 0 {
		mtu = 1420
	}
	cmds = append(cmds, []string{"-n", h.ns, "link", "set", c.name, "mtu", strconv.Itoa(mtu), "up"})
	var avoid []netip.Prefix
	for _, p := range []netip.Prefix{h.v4, h.v6} {
		if p.IsValid() {
			avoid = append(avoid, p.Masked())
		}
	}
	c.routes = labRoutes(cfg.allowed, avoid, cfg.endpoints)
	for _, r := range c.routes {
		cmds = append(cmds, []string{"-n", h.ns, "route", "replace", r.String(), "dev", c.name})
	}
	return h.lab.ipBatch(cmds...)
}

// Name returns the interface name.
func (c *WGClient) Name() string { return c.name }

// Addrs returns the interface addresses from the configuration.
func (c *WGClient) Addrs() []netip.Prefix { return slices.Clone(c.addrs) }

// Routes returns the routes added through the interface.
func (c *WGClient) Routes() []netip.Prefix { return slices.Clone(c.routes) }

// Proc returns the wireguard-go process.
func (c *WGClient) Proc() *Proc { return c.proc }

// Endpoint returns the current endpoint of the interface's single peer
// (`wg show IF endpoints`); the zero AddrPort if it has none yet.
func (c *WGClient) Endpoint() (netip.AddrPort, error) {
	v, err := c.peerField("endpoints")
	if err != nil || v == "(none)" {
		return netip.AddrPort{}, err
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("netlab: parsing endpoint of %s: %w", c.name, err)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// LatestHandshake returns the time of the latest handshake with the
// interface's single peer (`wg show IF latest-handshakes`); zero if none.
func (c *WGClient) LatestHandshake() (time.Time, error) {
	v, err := c.peerField("latest-handshakes")
	if err != nil {
		return time.Time{}, err
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("netlab: parsing latest handshake of %s: %w", c.name, err)
	}
	if sec == 0 {
		return time.Time{}, nil
	}
	return time.Unix(sec, 0), nil
}

// peerField returns the value `wg show IF field` gives for the single peer.
func (c *WGClient) peerField(field string) (string, error) {
	out, err := c.host.Run(context.Background(), "wg", "show", c.name, field)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || lines[0] == "" {
		return "", fmt.Errorf("%w: %s has %d", ErrNoPeer, c.name, len(slices.DeleteFunc(lines, func(s string) bool { return s == "" })))
	}
	_, v, ok := strings.Cut(lines[0], "\t")
	if !ok {
		return "", fmt.Errorf("netlab: unexpected wg show %s output %q", field, lines[0])
	}
	return strings.TrimSpace(v), nil
}

// Close deletes the interface, which ends wireguard-go (killed if it does
// not), and removes its control socket. Later calls return the first
// result.
func (c *WGClient) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		h := c.host
		if _, err := h.lab.run(context.Background(), "ip", "-n", h.ns, "link", "del", c.name); err != nil && h.lab.linkExists(h.ns, c.name) {
			errs = append(errs, err)
		}
		if err := c.proc.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(filepath.Join(wgSocketDir, c.name+".sock")); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// linkExists reports whether namespace ns holds link dev.
func (l *Lab) linkExists(ns, dev string) bool {
	_, err := l.run(context.Background(), "ip", "-n", ns, "link", "show", "dev", dev)
	return err == nil
}

// wgQuick is a parsed wg-quick configuration.
type wgQuick struct {
	setconf   string         // the configuration for wg setconf
	addrs     []netip.Prefix // Address
	mtu       int            // MTU, 0 if none
	allowed   []netip.Prefix // every peer's AllowedIPs
	endpoints []netip.Addr   // every peer's Endpoint that is an IP address
}

// wgQuickOnly are the [Interface] keys wg-quick handles itself and wg
// setconf rejects.
var wgQuickOnly = []string{"address", "dns", "mtu", "table", "preup", "postup", "predown", "postdown", "saveconfig"}

// parseWGQuick splits a wg-quick configuration into what wg setconf takes
// and what wg-quick would do with ip.
func parseWGQuick(conf string) (*wgQuick, error) {
	q := &wgQuick{}
	var (
		out     strings.Builder
		section string
	)
	sc := bufio.NewScanner(strings.NewReader(conf))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			if section != "interface" && section != "peer" {
				return nil, fmt.Errorf("netlab: wg-quick config line %d: unknown section %s", n, line)
			}
			fmt.Fprintf(&out, "\n%s\n", line)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("netlab: wg-quick config line %d: want Key = Value in a section", n)
		}
		key, v := strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if section == "interface" && slices.Contains(wgQuickOnly, key) {
			switch key {
			case "address":
				for _, s := range wgconf.SplitList(v) {
					p, err := netip.ParsePrefix(s)
					if err != nil {
						a, aerr := netip.ParseAddr(s)
						if aerr != nil {
							return nil, fmt.Errorf("netlab: wg-quick config line %d: bad Address %q", n, s)
						}
						p = netip.PrefixFrom(a, a.BitLen())
					}
					q.addrs = append(q.addrs, p)
				}
			case "mtu":
				mtu, err := strconv.Atoi(v)
				if err != nil || mtu < 576 || mtu > 65535 {
					return nil, fmt.Errorf("netlab: wg-quick config line %d: bad MTU %q", n, v)
				}
				q.mtu = mtu
			}
			continue
		}
		if section == "peer" {
			switch key {
			case "allowedips":
				for _, s := range wgconf.SplitList(v) {
					p, err := netip.ParsePrefix(s)
					if err != nil {
						return nil, fmt.Errorf("netlab: wg-quick config line %d: bad AllowedIPs %q", n, s)
					}
					q.allowed = append(q.allowed, p.Masked())
				}
			case "endpoint":
				if ap, err := netip.ParseAddrPort(v); err == nil {
					q.endpoints = append(q.endpoints, ap.Addr().Unmap())
				}
			}
		}
		fmt.Fprintf(&out, "%s = %s\n", strings.TrimSpace(k), v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	q.setconf = strings.TrimLeft(out.String(), "\n")
	return q, nil
}

// labRoutes returns the routes for allowed that stay inside LabRanges: an
// allowed range inside a lab range as it is, a lab range inside a wider
// allowed range (a default route, say) in its place; without those as wide
// as or wider than a prefix in avoid that they overlap (the host's LAN),
// or holding an endpoint.
func labRoutes(allowed, avoid []netip.Prefix, endpoints []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range allowed {
		a = a.Masked()
		for _, r := range LabRanges {
			var c netip.Prefix
			switch {
			case a.Bits() >= r.Bits() && r.Contains(a.Addr()):
				c = a
			case a.Bits() < r.Bits() && a.Contains(r.Addr()):
				c = r
			default:
				continue
			}
			if slices.ContainsFunc(avoid, func(p netip.Prefix) bool { return c.Overlaps(p) && c.Bits() <= p.Bits() }) ||
				slices.ContainsFunc(endpoints, c.Contains) ||
				slices.Contains(out, c) {
				continue
			}
			out = append(out, c)
		}
	}
	return out
}
