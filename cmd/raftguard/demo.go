package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/netlab"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a three-node cluster and a client in network namespaces, with a failover (root)",
		Description: "Builds a lab on this machine out of network namespaces: a switch, three servers and a\n" +
			"client. Bootstraps and joins the cluster, creates a peer, brings the client up with\n" +
			"Debian's wireguard-go and wg, pings through the tunnel, kills the leader, hands\n" +
			"leadership over, shows the outage the client saw each time, and tears everything down\n" +
			"(also on Ctrl-C or failure). Uses only documentation address ranges.\n\n" +
			"With --vip-mode bgp the servers announce the VIP over eBGP to a router (BIRD 2, Debian's\n" +
			"bird2) on their switch, the client sits on the router's other link with no layer-2\n" +
			"path to the servers, and after each failover the demo shows the router's route for\n" +
			"the VIP.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "keep", Usage: "keep the lab running at the end (until Ctrl-C) and print how to reach each node"},
			&cli.StringFlag{Name: "vip-mode", Value: "arp", Usage: "how the VIP reaches the leader: arp (servers and client on one switch) or bgp (a BIRD 2 router between the servers and the client)"},
		},
		Action: runDemo,
	}
}

// demoPackages are the Debian packages the demo needs, by the tool.
var demoPackages = map[string]string{
	"ip": "iproute2", "nft": "nftables", "wg": "wireguard-tools", "wireguard-go": "wireguard-go", "ping": "iputils-ping",
	"bird": "bird2", "birdc": "bird2",
}

// demoTools are the tools the demo runs in a VIP mode.
func demoTools(mode string) []string {
	tools := []string{"ip", "nft", "wg", "wireguard-go", "ping"}
	if mode == "bgp" {
		tools = append(tools, "bird", "birdc")
	}
	return tools
}

// step prints one line of progress: what is being done, then a tick or a
// cross and how long it took.
type stepper struct {
	w     io.Writer
	n     int
	total int
	quiet *atomic.Bool // set on Ctrl-C: the teardown owns the terminal
}

func (s *stepper) do(what string, fn func() (string, error)) error {
	if s.quiet.Load() {
		return errors.New("interrupted")
	}
	s.n++
	fmt.Fprintf(s.w, "[%d/%d] %s ... ", s.n, s.total, what)
	start := time.Now()
	detail, err := fn()
	took := time.Since(start).Round(10 * time.Millisecond)
	if s.quiet.Load() {
		return errors.New("interrupted")
	}
	if err != nil {
		fmt.Fprintf(s.w, "✗ (%v)\n      %v\n", took, err)
		return err
	}
	if detail != "" {
		detail = ": " + detail
	}
	fmt.Fprintf(s.w, "✓ %v%s\n", took, detail)
	return nil
}

type demoNode struct {
	id   string
	host *netlab.Host
	dir  string
	wg   string
	proc *netlab.Proc
}

type demo struct {
	quiet  atomic.Bool
	w      io.Writer
	bin    string
	lay    demoLayout
	lab    *netlab.Lab
	nodes  []*demoNode
	cli    *netlab.Host
	router *netlab.Host // bgp mode
	bird   *netlab.BIRD // bgp mode
	root   string
}

func runDemo(c *cli.Context) error {
	w := c.App.Writer
	mode := c.String("vip-mode")
	lay, ok := demoLayouts[mode]
	if !ok {
		return fmt.Errorf("--vip-mode %q: the demo shows arp or bgp", mode)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo builds network namespaces and needs root: sudo raftguard demo (it needs the Debian packages %s)", strings.Join(packageList(mode), " "))
	}
	if err := ensureTools(w, mode); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := os.MkdirTemp("", "raftguard-demo-")
	if err != nil {
		return err
	}
	d := &demo{w: w, bin: bin, lay: lay, root: root}
	defer func() {
		fmt.Fprint(w, "tearing down the lab ... ")
		if d.lab != nil {
			if err := d.lab.Close(); err != nil {
				fmt.Fprintf(w, "✗ %v\n", err)
			}
		}
		os.RemoveAll(root)
		fmt.Fprintln(w, "✓ done")
	}()
	// Ctrl-C: stop at the next step (the deferred teardown runs).
	errc := make(chan error, 1)
	go func() { errc <- d.run(ctx, c.Bool("keep")) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		d.quiet.Store(true)
		fmt.Fprintln(w, "\ninterrupted")
		err = errors.New("interrupted")
	}
	return err
}

// packageList names the Debian packages of the demo in a VIP mode.
func packageList(mode string) []string {
	var out []string
	for _, t := range demoTools(mode) {
		if !slices.Contains(out, demoPackages[t]) {
			out = append(out, demoPackages[t])
		}
	}
	return out
}

// ensureTools installs the missing Debian packages (as root with apt-get),
// or names them exactly.
func ensureTools(w io.Writer, mode string) error {
	var missing []string
	for _, t := range demoTools(mode) {
		if _, err := exec.LookPath(t); err != nil && !slices.Contains(missing, demoPackages[t]) {
			missing = append(missing, demoPackages[t])
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("missing tools: install the packages %s", strings.Join(missing, " "))
	}
	fmt.Fprintf(w, "installing %s with apt-get ...\n", strings.Join(missing, " "))
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, missing...)} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s failed (%v); install %s by hand:\n%s", args[0], err, strings.Join(missing, " "), tail(string(out), 15))
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var (
	demoTunnel = netip.MustParseAddr("198.51.100.1")
	demoPool   = "198.51.100.0/24"
)

// demoLayout is the lab of one VIP mode: its addresses and the flags the
// servers get.
type demoLayout struct {
	vip     string
	client  netip.Prefix
	client6 netip.Prefix // none in bgp mode
	server6 bool         // the servers get 2001:db8::N/64 too
	// bgp mode: the router on the servers' switch, the client's gateway
	// on the router's second link, and the client's network.
	router, gateway netip.Prefix
	clientNet       netip.Prefix
	// flags go to bootstrap, serverFlags to every server's first start.
	flags, serverFlags []string
}

// demoHold is the BGP hold time in bgp mode (the default of
// --bgp-hold-time).
const demoHold = 9 * time.Second

var demoLayouts = map[string]demoLayout{
	"arp": {
		vip:     "192.0.2.10/24",
		client:  netip.MustParsePrefix("192.0.2.50/24"),
		client6: netip.MustParsePrefix("2001:db8::50/64"),
		server6: true,
	},
	// The lab of TestBGPMode (test/bgp_test.go).
	"bgp": {
		vip:         "203.0.113.10/32",
		client:      netip.MustParsePrefix("203.0.113.130/25"),
		router:      netip.MustParsePrefix("192.0.2.254/24"),
		gateway:     netip.MustParsePrefix("203.0.113.129/25"),
		clientNet:   netip.MustParsePrefix("203.0.113.128/25"),
		flags:       []string{"--vip-mode", "bgp"},
		serverFlags: []string{"--bgp-asn", "65001", "--bgp-neighbor", "192.0.2.254@65000", "--bgp-hold-time", demoHold.String()},
	},
}

// bgp reports whether the demo runs in bgp mode.
func (d *demo) bgp() bool { return d.lay.router.IsValid() }

// demoBIRD is the router's BIRD 2 configuration in bgp mode: one eBGP
// session per server, s1 to sN (router AS 65000, servers AS 65001).
func demoBIRD(router netip.Addr, servers []netip.Addr) netlab.BIRDConfig {
	c := netlab.BIRDConfig{RouterID: router, ASN: 65000, HoldTime: demoHold, Accept: netip.MustParsePrefix("203.0.113.0/24")}
	for i, a := range servers {
		c.Neighbors = append(c.Neighbors, netlab.BGPNeighbor{Name: fmt.Sprintf("s%d", i+1), Addr: a, ASN: 65001})
	}
	return c
}

func (d *demo) run(ctx context.Context, keep bool) error {
	st := &stepper{w: d.w, total: 10, quiet: &d.quiet}
	title := "three servers and a client in network namespaces"
	if d.bgp() {
		st.total = 14
		title = "three servers announcing the VIP over BGP to a router, a client behind it, in network namespaces"
	}
	fmt.Fprintf(d.w, "raftguard demo: %s\n\n", title)
	if err := st.do(d.labWhat(), d.build); err != nil {
		return err
	}
	if d.bgp() {
		if err := st.do("r1: BIRD 2, one eBGP session per server (router AS 65000, servers AS 65001, hold time "+demoHold.String()+")", func() (string, error) {
			dir := filepath.Join(d.root, "r1")
			if err := os.Mkdir(dir, 0o700); err != nil {
				return "", err
			}
			var servers []netip.Addr
			for _, n := range d.nodes {
				servers = append(servers, n.host.IPv4().Addr())
			}
			var err error
			d.bird, err = d.router.StartBIRD(dir, demoBIRD(d.lay.router.Addr(), servers), netlab.StartOptions{})
			return "it accepts from the servers only host routes in 203.0.113.0/24", err
		}); err != nil {
			return err
		}
	}
	s1 := d.nodes[0]
	boot := "s1: bootstrapping the cluster (VIP " + d.lay.vip + ")"
	if d.bgp() {
		boot = "s1: bootstrapping the cluster (VIP " + d.lay.vip + ", --vip-mode bgp)"
	}
	if err := st.do(boot, func() (string, error) {
		args := append([]string{"--bootstrap", "--vip", d.lay.vip}, d.lay.flags...)
		if err := d.start(s1, append(args, "--pool", demoPool, "--client-allowed-ips", demoPool)...); err != nil {
			return "", err
		}
		_, err := d.waitStatus(ctx, s1, 1)
		if d.bgp() {
			return "leader, interface up, VIP on a local interface (not its LAN NIC), sessions to r1", err
		}
		return "leader, interface up, VIP claimed", err
	}); err != nil {
		return err
	}
	var leader string
	if err := st.do("s2, s3: joining with the join token", func() (string, error) {
		token, err := os.ReadFile(filepath.Join(s1.dir, "join.token"))
		if err != nil {
			return "", err
		}
		for _, n := range d.nodes[1:] {
			if err := d.start(n, "--join", "192.0.2.1:7443", "--token", strings.TrimSpace(string(token))); err != nil {
				return "", err
			}
		}
		status, err := d.waitStatus(ctx, s1, 3)
		leader = status.LeaderID
		return fmt.Sprintf("%d voters, leader %s", len(status.Nodes), status.LeaderID), err
	}); err != nil {
		return err
	}
	if err := d.routeStep(ctx, st, leader, "the leader"); err != nil {
		return err
	}
	var conf string
	if err := st.do(`creating peer "laptop" through s2, a follower`, func() (string, error) {
		out, err := d.cliRun(ctx, d.nodes[1], "peer", "add", "laptop")
		if err != nil {
			return "", err
		}
		conf = out[strings.Index(out, "# raftguard peer"):]
		return "the leader allocated an address and keys; s2 relayed the answer", nil
	}); err != nil {
		return err
	}
	var wc *netlab.WGClient
	if err := st.do("client: Debian's wireguard-go and wg with that config", func() (string, error) {
		var err error
		wc, err = d.cli.StartWireGuardClient(d.lab.Name("rgdcl"), conf)
		return "", err
	}); err != nil {
		return err
	}
	if err := st.do(fmt.Sprintf("pinging %s through the tunnel", demoTunnel), func() (string, error) {
		p, err := d.cli.StartPinger(demoTunnel, 50*time.Millisecond)
		if err != nil {
			return "", err
		}
		defer p.Stop()
		if err := p.WaitReplies(5, 20*time.Second); err != nil {
			return "", err
		}
		ep, err := wc.Endpoint()
		return fmt.Sprintf("replies arrive; the client's server endpoint is %s", ep), err
	}); err != nil {
		return err
	}
	// Wait until the leader has recorded the client's endpoint (it does so
	// every second): the next leader greets the client at once.
	if err := d.waitEndpoint(ctx, d.node(leader), "laptop"); err != nil {
		return err
	}

	var killGap, transferGap time.Duration
	var killed *demoNode
	if err := st.do("kill -9 of the leader while the client pings every 50ms", func() (string, error) {
		status, err := d.waitStatus(ctx, s1, 3)
		if err != nil {
			return "", err
		}
		killed = d.node(status.LeaderID)
		killGap, err = d.outage(func() error { return killed.proc.Signal(syscall.SIGKILL) })
		return fmt.Sprintf("%s killed; the client's longest gap between replies was %v", killed.id, killGap.Round(time.Millisecond)), err
	}); err != nil {
		return err
	}
	if d.bgp() {
		if leader, err := d.newLeader(ctx, d.other(killed), killed.id); err != nil {
			return err
		} else if err := d.routeStep(ctx, st, leader, "the new leader"); err != nil {
			return err
		}
	}
	if err := st.do("restarting "+killed.id+" from its data dir", func() (string, error) {
		if err := d.start(killed); err != nil {
			return "", err
		}
		status, err := d.waitStatus(ctx, d.other(killed), 3)
		leader = status.LeaderID
		return fmt.Sprintf("it rejoined as a follower; leader is %s", status.LeaderID), err
	}); err != nil {
		return err
	}
	if err := st.do("raftguard cluster transfer-leader while the client pings", func() (string, error) {
		var out string
		var err error
		transferGap, err = d.outage(func() error {
			out, err = d.cliRun(ctx, killed, "cluster", "transfer-leader")
			return err
		})
		return fmt.Sprintf("%s; the client's longest gap was %v", strings.TrimSpace(out), transferGap.Round(time.Millisecond)), err
	}); err != nil {
		return err
	}
	if d.bgp() {
		if leader, err := d.newLeader(ctx, killed, leader); err != nil {
			return err
		} else if err := d.routeStep(ctx, st, leader, "the new leader"); err != nil {
			return err
		}
	}
	var table string
	if err := st.do("cluster status", func() (string, error) {
		var err error
		table, err = d.cliRun(ctx, killed, "cluster", "status")
		return "", err
	}); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "\n%s", indent(table))
	fmt.Fprintf(d.w, "\nSummary\n  client outage, leader killed with SIGKILL:   %v\n  client outage, planned transfer-leader:      %v\n",
		killGap.Round(time.Millisecond), transferGap.Round(time.Millisecond))
	if d.bgp() {
		fmt.Fprintf(d.w, "  the router r1 sent the VIP to the leader of the moment each time (its route's\n"+
			"  next hop); the client, on another subnet, has no layer-2 path to the servers\n")
	}
	fmt.Fprintf(d.w, "  (a client that must wait for WireGuard's own handshake retry, as with keepalived\n   moving a VIP between plain WireGuard servers, is dark for about 15s: see BENCHMARKS.md)\n\n")
	if keep {
		d.printAccess()
		<-ctx.Done()
	}
	return nil
}

// labWhat describes the lab the build step makes.
func (d *demo) labWhat() string {
	if d.bgp() {
		return "building the lab: a switch, servers s1 s2 s3, router r1, client c1 behind r1"
	}
	return "building the lab: a switch, servers s1 s2 s3, client c1"
}

// build makes the lab: the servers on the switch and the client, in bgp
// mode behind the router on its own link.
func (d *demo) build() (string, error) {
	var err error
	if d.lab, err = netlab.New("rgdemo"); err != nil {
		return "", err
	}
	for i := 1; i <= 3; i++ {
		var v6 netip.Prefix
		if d.lay.server6 {
			v6 = netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", i))
		}
		h, err := d.lab.AddHost(fmt.Sprintf("s%d", i), netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i)), v6)
		if err != nil {
			return "", err
		}
		d.nodes = append(d.nodes, &demoNode{id: fmt.Sprintf("s%d", i), host: h, dir: filepath.Join(d.root, fmt.Sprintf("s%d", i)), wg: d.lab.Name("rgdemo")})
	}
	if d.bgp() {
		if d.router, err = d.lab.AddHost("r1", d.lay.router, netip.Prefix{}); err != nil {
			return "", err
		}
	}
	if d.cli, err = d.lab.AddHost("c1", d.lay.client, d.lay.client6); err != nil {
		return "", err
	}
	if !d.bgp() {
		return "192.0.2.1-3 and 192.0.2.50 on one bridge", nil
	}
	// The client leaves the switch for a link of its own to the router:
	// no layer-2 path to the servers, which route its network via r1.
	if err := d.cli.MoveBehind(d.router, "eth1", d.lay.gateway); err != nil {
		return "", err
	}
	for _, n := range d.nodes {
		if err := n.host.AddRoute(d.lay.clientNet, d.lay.router.Addr()); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("192.0.2.1-3 and r1's %v on one bridge; c1 %v on r1's second link (r1: %v)",
		d.lay.router.Addr(), d.lay.client, d.lay.gateway.Addr()), nil
}

// newLeader polls node n until the cluster has a leader other than old
// that holds the VIP, and returns its id.
func (d *demo) newLeader(ctx context.Context, n *demoNode, old string) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var st httpapi.ClusterStatus
		out, err := d.cliRun(ctx, n, "-o", "json", "cluster", "status")
		if err == nil {
			err = json.Unmarshal([]byte(out), &st)
		}
		if err == nil && st.LeaderID != "" && st.LeaderID != old && st.VIPHolder == st.LeaderID {
			return st.LeaderID, nil
		}
		last = fmt.Sprintf("leader %q, VIP holder %q, %v", st.LeaderID, st.VIPHolder, err)
		time.Sleep(200 * time.Millisecond) // polling the cluster, bounded by the deadline
	}
	return "", fmt.Errorf("no new leader after 30s: %s (logs in %s)", last, d.root)
}

// routeStep, in bgp mode, waits until the router's chosen route for the
// VIP goes to the leader's address and shows the router's routes for it.
func (d *demo) routeStep(ctx context.Context, st *stepper, leader, who string) error {
	if !d.bgp() {
		return nil
	}
	vip := netip.MustParsePrefix(d.lay.vip).Addr()
	n := d.node(leader)
	want := n.host.IPv4().Addr()
	var shown string
	err := st.do(fmt.Sprintf("r1's route for the VIP (birdc show route for %s)", vip), func() (string, error) {
		// A stale route is gone at the latest when its session's hold
		// time expires; the leader's newer route wins before that.
		deadline := time.Now().Add(demoHold + 15*time.Second)
		for {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			hops, best, err := d.bird.NextHops(qctx, vip)
			if err == nil && best == want {
				shown, err = d.bird.ShowRoute(qctx, vip)
			}
			cancel()
			if err == nil && best == want {
				return fmt.Sprintf("chosen next hop %s, %s's address: %s", best, n.id, who), nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return "", fmt.Errorf("r1's next hops for %s: %v, chosen %v, want %s (%s): %v", vip, hops, best, want, n.id, err)
			}
			time.Sleep(100 * time.Millisecond) // polling the router, bounded by the deadline
		}
	})
	if err == nil && !d.quiet.Load() {
		fmt.Fprint(d.w, indent(birdRoutes(shown)))
	}
	return err
}

// birdRoutes keeps the routes of birdc's answer (not its greeting), with
// tabs as spaces.
func birdRoutes(out string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(l, "BIRD ") && strings.HasSuffix(l, " ready.") {
			continue
		}
		lines = append(lines, strings.ReplaceAll(l, "\t", "    "))
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	return "      " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n      ") + "\n"
}

func (d *demo) node(id string) *demoNode {
	for _, n := range d.nodes {
		if n.id == id {
			return n
		}
	}
	return d.nodes[0]
}

func (d *demo) other(not *demoNode) *demoNode {
	for _, n := range d.nodes {
		if n != not {
			return n
		}
	}
	return not
}

func (d *demo) start(n *demoNode, args ...string) error {
	full := []string{"server", "--data-dir", n.dir}
	if len(args) > 0 {
		full = append(full, "--node-id", n.id, "--advertise", n.host.IPv4().Addr().String(), "--wg-interface", n.wg)
		full = append(full, d.lay.serverFlags...)
		full = append(full, args...)
	}
	p, err := n.host.StartWith(netlab.StartOptions{LogFile: filepath.Join(d.root, n.id+".log")}, d.bin, full...)
	n.proc = p
	return err
}

func (d *demo) cliRun(ctx context.Context, n *demoNode, args ...string) (string, error) {
	return n.host.Run(ctx, d.bin, append([]string{"--data-dir", n.dir}, args...)...)
}

// waitStatus polls until the cluster has want members, a leader that holds
// the VIP, and every member reachable.
func (d *demo) waitStatus(ctx context.Context, n *demoNode, want int) (httpapi.ClusterStatus, error) {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var st httpapi.ClusterStatus
		out, err := d.cliRun(ctx, n, "-o", "json", "cluster", "status")
		if err == nil {
			err = json.Unmarshal([]byte(out), &st)
		}
		if err == nil {
			ready := 0
			for _, nd := range st.Nodes {
				if nd.Reachable && nd.AppliedIndex > 0 {
					ready++
				}
			}
			if ready == want && len(st.Nodes) == want && st.LeaderID != "" && st.VIPHolder == st.LeaderID {
				return st, nil
			}
			err = fmt.Errorf("%d of %d nodes ready, leader %q, VIP holder %q", ready, want, st.LeaderID, st.VIPHolder)
		}
		last = err
		time.Sleep(200 * time.Millisecond) // polling the cluster, bounded by the deadline
	}
	return httpapi.ClusterStatus{}, fmt.Errorf("cluster not ready after 30s: %v (logs in %s)", last, d.root)
}

// waitEndpoint polls until node n's replicated state holds peer's endpoint.
func (d *demo) waitEndpoint(ctx context.Context, n *demoNode, peer string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var p httpapi.PeerView
		out, err := d.cliRun(ctx, n, "-o", "json", "peer", "show", peer)
		if err == nil {
			err = json.Unmarshal([]byte(out), &p)
		}
		if err == nil && p.Endpoint != "" {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the leader did not record the endpoint of %s within 15s: %v (logs in %s)", peer, err, d.root)
		}
		time.Sleep(100 * time.Millisecond) // polling the state, bounded by the deadline
	}
}

// outage pings through the tunnel, runs fault, and returns the longest gap
// between replies from the fault until replies flow again.
func (d *demo) outage(fault func() error) (time.Duration, error) {
	p, err := d.cli.StartPinger(demoTunnel, 50*time.Millisecond)
	if err != nil {
		return 0, err
	}
	if err := p.WaitReplies(5, 10*time.Second); err != nil {
		p.Stop()
		return 0, err
	}
	p.Mark()
	if err := fault(); err != nil {
		p.Stop()
		return 0, err
	}
	if err := p.WaitReplies(p.Replies()+10, 30*time.Second); err != nil {
		r := p.Stop()
		return r.LongestGap, fmt.Errorf("the client did not recover within 30s: %v", err)
	}
	return p.Stop().LongestGap, nil
}

func (d *demo) printAccess() {
	fmt.Fprintf(d.w, "The lab is running. Reach each node from this machine with:\n")
	for _, n := range d.nodes {
		fmt.Fprintf(d.w, "  ip netns exec %s %s --data-dir %s cluster status\n", n.host.Namespace(), d.bin, n.dir)
	}
	fmt.Fprintf(d.w, "  ip netns exec %s ping %s          # the client, through the tunnel\n", d.cli.Namespace(), demoTunnel)
	if d.bgp() {
		vip := netip.MustParsePrefix(d.lay.vip).Addr()
		fmt.Fprintf(d.w, "  ip netns exec %s birdc -s %s show route for %s   # the router's route for the VIP\n", d.router.Namespace(), d.bird.Socket(), vip)
		fmt.Fprintf(d.w, "  ip netns exec %s birdc -s %s show protocols   # its BGP sessions\n", d.router.Namespace(), d.bird.Socket())
	}
	fmt.Fprintf(d.w, "Node logs: %s/s*.log\n", d.root)
	if d.bgp() {
		fmt.Fprintf(d.w, "Router log and configuration: %s/r1/bird.log, bird.conf\n", d.root)
	}
	fmt.Fprintf(d.w, "Press Ctrl-C here to tear everything down.\n")
}
