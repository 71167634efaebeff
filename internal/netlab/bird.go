package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// BIRDConfig is a BIRD 2 router with one eBGP session per neighbour. It
// accepts from its neighbours only IPv4 host routes (/32) inside Accept,
// announces nothing, and puts the routes it chose into the host's kernel
// table, so that the host forwards to the chosen next hop. A session that
// failed (its hold timer expired: a frozen or cut-off neighbour) is
// accepted again after a second, not after BIRD's default of 60.
type BIRDConfig struct {
	// RouterID is the router id and the local address of every session
	// (IPv4).
	RouterID netip.Addr
	// ASN is the router's AS number.
	ASN uint32
	// Neighbors are the BGP speakers, one session each.
	Neighbors []BGPNeighbor
	// HoldTime is the sessions' hold time, whole seconds, at least 3.
	HoldTime time.Duration
	// Accept is the IPv4 range whose host routes are accepted.
	Accept netip.Prefix
}

// BGPNeighbor is one eBGP session of a BIRDConfig.
type BGPNeighbor struct {
	// Name names the session's protocol (letters, digits, underscores).
	Name string
	Addr netip.Addr
	ASN  uint32
}

var birdSymbol = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validate checks the configuration.
func (c BIRDConfig) validate() error {
	if !c.RouterID.Is4() {
		return fmt.Errorf("netlab: BIRD router id %v is not an IPv4 address", c.RouterID)
	}
	if c.ASN == 0 {
		return errors.New("netlab: BIRD without an AS number")
	}
	if len(c.Neighbors) == 0 {
		return errors.New("netlab: BIRD without a BGP neighbour")
	}
	for _, n := range c.Neighbors {
		if !birdSymbol.MatchString(n.Name) || !n.Addr.Is4() || n.ASN == 0 {
			return fmt.Errorf("netlab: invalid BGP neighbour %q %v AS %d", n.Name, n.Addr, n.ASN)
		}
	}
	if c.HoldTime < 3*time.Second || c.HoldTime%time.Second != 0 {
		return fmt.Errorf("netlab: BGP hold time %v is not whole seconds of at least 3", c.HoldTime)
	}
	if !c.Accept.IsValid() || !c.Accept.Addr().Is4() {
		return fmt.Errorf("netlab: BIRD accepts routes within %v, want an IPv4 prefix", c.Accept)
	}
	return nil
}

// Conf renders bird.conf.
func (c BIRDConfig) Conf() (string, error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `log stderr all;
router id %s;
protocol device { scan time 10; }
protocol kernel { ipv4 { import none; export all; }; }
`, c.RouterID)
	for _, n := range c.Neighbors {
		fmt.Fprintf(&b, `protocol bgp %s {
	local %s as %d;
	neighbor %s as %d;
	hold time %d;
	connect retry time 1;
	error wait time 1, 10;
	ipv4 { import filter { if net ~ [ %s{32,32} ] then accept; reject; }; export none; };
}
`, n.Name, c.RouterID, c.ASN, n.Addr, n.ASN, int(c.HoldTime/time.Second), c.Accept.Masked())
	}
	return b.String(), nil
}

// BIRD is a BIRD 2 daemon running in a host, in the foreground, with its
// configuration, control socket and log in one directory.
type BIRD struct {
	host *Host
	sock string
	proc *Proc
}

// StartBIRD writes bird.conf into dir and runs `bird -c bird.conf -s
// bird.ctl -f` in the host, logging to dir/bird.log (o.LogFile if set).
// It returns once the daemon answers on its control socket. The lab ends
// it, by PID, on Close.
func (h *Host) StartBIRD(dir string, c BIRDConfig, o StartOptions) (*BIRD, error) {
	conf, err := c.Conf()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if o.LogFile == "" {
		o.LogFile = filepath.Join(dir, "bird.log")
	}
	b := &BIRD{host: h, sock: filepath.Join(dir, "bird.ctl")}
	if b.proc, err = h.StartWith(o, "bird", "-c", path, "-s", b.sock, "-f"); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(patience(10 * time.Second))
	for {
		ctx, cancel := context.WithTimeout(context.Background(), patience(5*time.Second))
		_, err := h.Run(ctx, "birdc", "-s", b.sock, "show", "status")
		cancel()
		if err == nil {
			return b, nil
		}
		if b.proc.Exited() || time.Now().After(deadline) {
			return b, fmt.Errorf("netlab: BIRD in %s does not answer on %s: %w\n%s", h.name, b.sock, err, b.proc.Output())
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Proc returns the bird process.
func (b *BIRD) Proc() *Proc { return b.proc }

// Socket returns the path of the control socket (birdc -s).
func (b *BIRD) Socket() string { return b.sock }

// ShowRoute returns the output of `birdc show route for addr`: the routes
// the router holds for addr, the chosen one marked "*".
func (b *BIRD) ShowRoute(ctx context.Context, addr netip.Addr) (string, error) {
	return b.host.Run(ctx, "birdc", "-s", b.sock, "show", "route", "for", addr.String())
}

// NextHops returns the next hops of the routes the router holds for addr,
// and the one of the route it chose (the zero Addr when there is none).
// No route for addr is no next hop, not an error (birdc then exits 1).
func (b *BIRD) NextHops(ctx context.Context, addr netip.Addr) (hops []netip.Addr, best netip.Addr, err error) {
	out, err := b.ShowRoute(ctx, addr)
	if err != nil && strings.Contains(out, "\nNetwork not found") {
		return nil, netip.Addr{}, nil
	}
	if err != nil {
		return nil, netip.Addr{}, err
	}
	hops, best = parseBIRDRoutes(out)
	return hops, best, nil
}

var birdVia = regexp.MustCompile(`\bvia ([0-9A-Fa-f.:]+)`)

// parseBIRDRoutes reads the next hops out of `birdc show route`: each
// route is a line with "unicast [" (" * " after the protocol's bracket
// when chosen) followed by its "via ADDR" lines.
func parseBIRDRoutes(out string) (hops []netip.Addr, best netip.Addr) {
	chosen := false
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "unicast [") {
			chosen = strings.Contains(line, "] * (")
			continue
		}
		m := birdVia.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a, err := netip.ParseAddr(m[1])
		if err != nil {
			continue
		}
		hops = append(hops, a)
		if chosen {
			best = a
		}
	}
	return hops, best
}

// Sessions returns the state of each BGP session by its protocol's name,
// as `birdc show protocols` gives it ("Established" when up; "Active",
// "Connect", "Idle" and the like while not).
func (b *BIRD) Sessions(ctx context.Context) (map[string]string, error) {
	out, err := b.host.Run(ctx, "birdc", "-s", b.sock, "show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseBIRDSessions(out), nil
}

// parseBIRDSessions reads the BGP lines of `birdc show protocols`: name,
// protocol, table, state, since, then the info (the session's state and
// its last error).
func parseBIRDSessions(out string) map[string]string {
	sessions := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != "BGP" {
			continue
		}
		sessions[f[0]] = strings.Join(f[5:], " ")
	}
	return sessions
}
