package test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/dataplane"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/netlab"
	"github.com/raftguard/raftguard/internal/pki"
)

// Addresses of the namespace lab (documentation ranges only).
var (
	vip4   = netip.MustParsePrefix("192.0.2.10/24")
	vip6   = netip.MustParsePrefix("2001:db8::10/64")
	pool4  = "198.51.100.0/24" // tunnel pools in documentation and local ranges
	pool6  = "fd00:99::/64"
	client = netip.MustParsePrefix("192.0.2.50/24")
)

// labServer is one raftguard node in its own namespace.
type labServer struct {
	id    string
	host  *netlab.Host
	dir   string
	wg    string // WireGuard interface name
	proc  *netlab.Proc
	extra []string
	bin   string // the raftguard binary it runs; the cluster's when empty
}

// labCluster is a switch, n raftguard servers and one client host.
type labCluster struct {
	t       testing.TB
	bin     string
	lab     *netlab.Lab
	servers []*labServer
	client  *netlab.Host
	logDir  string

	apiMu sync.Mutex            // guards apis
	apis  map[string]labNodeAPI // server id -> API client, see api
}

// labNodeAPI is a client of one server's API with the credentials it was
// made with.
type labNodeAPI struct {
	*nodeAPI
	info agent.NodeInfo
}

// labDataplane is the data plane the lab's servers run with, from
// RAFTGUARD_TEST_DATAPLANE: "kernel" or "userspace" is passed as
// --dataplane to every server (make test-kernel sets "kernel"); empty
// leaves the servers' default (auto).
func labDataplane(t testing.TB) string {
	t.Helper()
	switch dp := os.Getenv("RAFTGUARD_TEST_DATAPLANE"); dp {
	case "kernel":
		if !dataplane.KernelSupported() {
			t.Fatal("RAFTGUARD_TEST_DATAPLANE=kernel, but this kernel has no WireGuard (make test-kernel runs the lab in a VM that has)")
		}
		return dp
	case "", "userspace":
		return dp
	default:
		t.Fatalf("RAFTGUARD_TEST_DATAPLANE=%q: want kernel or userspace", dp)
		return ""
	}
}

// linkKinds maps the data planes to the kind of link each makes.
var linkKinds = map[string]string{"kernel": "wireguard", "userspace": "tun"}

// checkDataplane fails the test unless every running server reports the
// data plane RAFTGUARD_TEST_DATAPLANE asked for, and the WireGuard link of
// each server that has one is of that data plane's kind as the kernel
// reports it (netlink's IFLA_INFO_KIND: wireguard for the kernel module, tun
// for wireguard-go). reported maps node ids to the data plane each node's
// status names; the leader must have its link.
func (lc *labCluster) checkDataplane(leaderID string, reported map[string]string) {
	lc.t.Helper()
	want := labDataplane(lc.t)
	if want == "" {
		return
	}
	for id, dp := range reported {
		if dp != want {
			lc.t.Fatalf("RAFTGUARD_TEST_DATAPLANE=%s, but node %s runs the %q data plane", want, id, dp)
		}
	}
	for _, s := range lc.servers {
		if s.proc == nil || s.proc.Exited() {
			continue
		}
		kind, err := s.host.LinkKind(s.wg)
		if err != nil {
			if s.id == leaderID {
				lc.t.Fatalf("leader %s: WireGuard link %s: %v", s.id, s.wg, err)
			}
			continue // a follower may keep no link
		}
		if kind != linkKinds[want] {
			lc.t.Fatalf("RAFTGUARD_TEST_DATAPLANE=%s, but %s's link %s is of kind %q, want %q", want, s.id, s.wg, kind, linkKinds[want])
		}
	}
}

// needLab skips a test that cannot build a namespace lab here.
func needLab(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, TUN devices and nftables (run `make test` as root)")
	}
	if err := netlab.Available("ip", "nft", "wg", "wireguard-go", "ping"); err != nil {
		t.Skipf("namespace lab unavailable: %v (install wireguard-tools wireguard-go iputils-ping nftables iproute2)", err)
	}
}

// newLab makes a namespace lab named after prefix and a cluster on it with
// no servers yet. When the test ends it shows the servers' output if the
// test failed, and closes the lab.
func newLab(t testing.TB, prefix string) *labCluster {
	t.Helper()
	lab, err := netlab.New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	lc := &labCluster{t: t, bin: raftguardBinary(t), lab: lab, logDir: t.TempDir()}
	if dir := os.Getenv("RAFTGUARD_TEST_LOGS"); dir != "" {
		// Keep the servers' logs (each test in a directory of its own).
		lc.logDir = filepath.Join(dir, t.Name())
		if err := os.MkdirAll(lc.logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range lc.servers {
				if s.proc != nil {
					t.Logf("--- %s output (tail):\n%s", s.id, tail(s.proc.Output(), 60))
				}
			}
		}
		if err := lab.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return lc
}

// bootstrap starts the first server with --bootstrap and flags, the others
// joining through it, and waits until all of them are healthy.
func (lc *labCluster) bootstrap(flags ...string) {
	lc.t.Helper()
	s1 := lc.servers[0]
	lc.start(s1, append([]string{"--bootstrap"}, flags...)...)
	token := lc.waitFile(filepath.Join(s1.dir, "join.token"))
	for _, s := range lc.servers[1:] {
		lc.start(s, "--join", "192.0.2.1:7443", "--token", token)
	}
	lc.waitHealthy(len(lc.servers))
}

// newLabCluster starts n servers (s1 bootstraps, the others join through
// it) and a client host. extra flags go to every server.
func newLabCluster(t testing.TB, n int, extra ...string) *labCluster {
	needLab(t)
	lc := newLab(t, "rgt")
	lab := lc.lab
	for i := 1; i <= n; i++ {
		h, err := lab.AddHost(fmt.Sprintf("s%d", i),
			netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i)),
			netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", i)))
		if err != nil {
			t.Fatal(err)
		}
		lc.servers = append(lc.servers, &labServer{
			id: fmt.Sprintf("s%d", i), host: h, dir: filepath.Join(t.TempDir(), "data"),
			wg: lab.Name("rgwg"), extra: extra,
		})
	}
	var err error
	if lc.client, err = lab.AddHost("c1", client, netip.MustParsePrefix("2001:db8::50/64")); err != nil {
		t.Fatal(err)
	}
	lc.bootstrap("--vip", vip4.String(), "--vip", vip6.String(), "--pool", pool4, "--pool6", pool6)
	return lc
}

// addServer plugs one more server host, sN at 192.0.2.N, into the lab
// without starting it (start it with lc.start and --join).
func (lc *labCluster) addServer(n int) *labServer {
	lc.t.Helper()
	id := fmt.Sprintf("s%d", n)
	h, err := lc.lab.AddHost(id,
		netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", n)),
		netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", n)))
	if err != nil {
		lc.t.Fatal(err)
	}
	s := &labServer{
		id: id, host: h, dir: filepath.Join(lc.t.TempDir(), "data"),
		wg: lc.lab.Name("rgwg"), extra: lc.servers[0].extra,
	}
	lc.servers = append(lc.servers, s)
	return s
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// start runs `raftguard server` in the server's namespace. Without args it
// restarts from the data dir alone.
func (lc *labCluster) start(s *labServer, args ...string) {
	lc.t.Helper()
	full := []string{"server", "--data-dir", s.dir}
	full = append(full, raftTimeoutFlags()...)
	if len(args) > 0 {
		full = append(full, "--node-id", s.id, "--advertise", s.host.IPv4().Addr().String(), "--wg-interface", s.wg, "--log-level", "debug")
		if dp := labDataplane(lc.t); dp != "" && !slices.Contains(s.extra, "--dataplane") {
			full = append(full, "--dataplane", dp)
		}
		full = append(full, s.extra...)
		full = append(full, args...)
	}
	bin := lc.bin
	if s.bin != "" {
		bin = s.bin
	}
	p, err := s.host.StartWith(netlab.StartOptions{LogFile: filepath.Join(lc.logDir, s.id+".log")}, bin, full...)
	if err != nil {
		lc.t.Fatal(err)
	}
	s.proc = p
}

func (lc *labCluster) waitFile(path string) string {
	lc.t.Helper()
	var out string
	poll(lc.t, 15*time.Second, func() error {
		b, err := os.ReadFile(path)
		out = strings.TrimSpace(string(b))
		if err == nil && out == "" {
			return fmt.Errorf("%s empty", path)
		}
		return err
	})
	return out
}

// cli runs a client command on a server node (it reads the data dir).
func (lc *labCluster) cli(s *labServer, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.host.Run(ctx, lc.bin, append([]string{"--data-dir", s.dir}, args...)...)
}

// status reads GET /v1/cluster from the server, as `raftguard cluster
// status` on that node does (same address, token and CA, from its data
// dir), without starting a process for it: tests poll it, and in the
// test VM starting the CLI takes seconds.
func (lc *labCluster) status(s *labServer) (httpapi.ClusterStatus, error) {
	var st httpapi.ClusterStatus
	a, err := lc.api(s)
	if err != nil {
		return st, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), scaled(10*time.Second))
	defer cancel()
	return st, a.get(ctx, "/v1/cluster", &st)
}

// api returns a client of the server's API made from what its data dir
// holds now (a new one when that changed, e.g. a rotated token), dialing
// from the server's own namespace.
func (lc *labCluster) api(s *labServer) (*nodeAPI, error) {
	info, err := agent.ReadNodeInfo(s.dir)
	if err != nil {
		return nil, err
	}
	lc.apiMu.Lock()
	defer lc.apiMu.Unlock()
	if a, ok := lc.apis[s.id]; ok && a.info == info {
		return a.nodeAPI, nil
	}
	ca, err := os.ReadFile(info.CACertFile)
	if err != nil {
		return nil, err
	}
	tc, err := pki.CAClientConfig(ca)
	if err != nil {
		return nil, err
	}
	if a, ok := lc.apis[s.id]; ok {
		a.close()
	} else if lc.apis == nil {
		lc.apis = map[string]labNodeAPI{}
		lc.t.Cleanup(func() {
			lc.apiMu.Lock()
			defer lc.apiMu.Unlock()
			for _, a := range lc.apis {
				a.close()
			}
		})
	}
	a := newNodeAPI(s.id, s.host, info.APIAdvertise, tc, info.AdminToken, scaled(10*time.Second))
	lc.apis[s.id] = labNodeAPI{nodeAPI: a, info: info}
	return a, nil
}

// waitHealthy waits until every reachable node reports n members, one
// leader holding the VIP with its interface up.
func (lc *labCluster) waitHealthy(n int) httpapi.ClusterStatus {
	lc.t.Helper()
	var st httpapi.ClusterStatus
	poll(lc.t, 30*time.Second, func() error {
		var err error
		for _, s := range lc.servers {
			if s.proc == nil || s.proc.Exited() {
				continue
			}
			if st, err = lc.status(s); err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
		if len(st.Nodes) != n || st.LeaderID == "" || st.VIPHolder != st.LeaderID {
			return fmt.Errorf("cluster: leader %q, VIP holder %q, %d nodes", st.LeaderID, st.VIPHolder, len(st.Nodes))
		}
		for _, nd := range st.Nodes {
			if !nd.Reachable || nd.AppliedIndex == 0 {
				return fmt.Errorf("node %s not ready (%s)", nd.NodeID, nd.Error)
			}
			if (nd.NodeID == st.LeaderID) != nd.InterfaceUp {
				return fmt.Errorf("node %s: interface up %v", nd.NodeID, nd.InterfaceUp)
			}
		}
		return nil
	})
	reported := map[string]string{}
	for _, nd := range st.Nodes {
		if nd.Reachable {
			reported[nd.NodeID] = nd.Dataplane
		}
	}
	lc.checkDataplane(st.LeaderID, reported)
	return st
}

func (lc *labCluster) server(id string) *labServer {
	for _, s := range lc.servers {
		if s.id == id {
			return s
		}
	}
	lc.t.Fatalf("no server %s", id)
	return nil
}

// leader asks the given nodes (or all) who leads. Given nodes must name
// one of themselves: after a fault they may still name the killed or
// cut-off leader for a moment.
func (lc *labCluster) leader(ask ...*labServer) *labServer {
	lc.t.Helper()
	if len(ask) == 0 {
		ask = lc.servers
	}
	var id string
	poll(lc.t, 15*time.Second, func() error {
		for _, s := range ask {
			st, err := lc.status(s)
			if err != nil || st.LeaderID == "" {
				continue
			}
			if !slices.ContainsFunc(ask, func(a *labServer) bool { return a.id == st.LeaderID }) {
				return fmt.Errorf("%s still names %s as leader", s.id, st.LeaderID)
			}
			id = st.LeaderID
			return nil
		}
		return fmt.Errorf("no leader known")
	})
	return lc.server(id)
}

// addClient creates a peer through node via and brings up a WireGuard client
// in the client namespace with the config the API returned.
func (lc *labCluster) addClient(via *labServer, name string, extra ...string) *netlab.WGClient {
	lc.t.Helper()
	conf, err := lc.cli(via, append([]string{"peer", "add", name}, extra...)...)
	if err != nil {
		lc.t.Fatalf("peer add: %v\n%s", err, conf)
	}
	conf = conf[strings.Index(conf, "# raftguard peer"):]
	wc, err := lc.client.StartWireGuardClient(lc.lab.Name("rgcl"), conf)
	if err != nil {
		lc.t.Fatal(err)
	}
	return wc
}

// vipHolders returns the servers whose NIC holds the IPv4 VIP right now,
// whatever their process does: a killed or stopped process's NIC counts
// too (the VIP's kernel lifetime, not the process, takes it away).
func (lc *labCluster) vipHolders() []string {
	var out []string
	for _, s := range lc.servers {
		if ok, err := s.host.HasAddr(vip4.Addr()); err == nil && ok {
			out = append(out, s.id)
		}
	}
	return out
}

// interfaceUp reads the WireGuard link's state in the server's namespace.
func (lc *labCluster) interfaceUp(s *labServer) bool {
	out, err := s.host.Run(context.Background(), "ip", "-o", "link", "show", "dev", s.wg)
	return err == nil && strings.Contains(strings.SplitN(out, ">", 2)[0], ",UP")
}

// vipSampler reads every server's addresses every 50ms (every NIC, also
// those of killed and stopped processes) and records the longest time two
// servers held the VIP at once. Two holders happen only after a fault,
// until the old holder's VIP lease runs out: at most fenceLimit.
type vipSampler struct {
	mu      sync.Mutex // guards the fields below
	since   time.Time  // start of the current overlap
	longest time.Duration
	samples int
	stop    chan struct{}
	done    chan struct{}
}

func (lc *labCluster) startSampler() *vipSampler {
	vs := &vipSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(vs.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			n := len(lc.vipHolders())
			now := time.Now()
			vs.mu.Lock()
			vs.samples++
			switch {
			case n > 1 && vs.since.IsZero():
				vs.since = now
			case n > 1:
				vs.longest = max(vs.longest, now.Sub(vs.since))
			default:
				vs.since = time.Time{}
			}
			vs.mu.Unlock()
			select {
			case <-vs.stop:
				return
			case <-t.C:
			}
		}
	}()
	return vs
}

func (vs *vipSampler) Stop() (longest time.Duration, samples int) {
	close(vs.stop)
	<-vs.done
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return vs.longest, vs.samples
}

// checkEndpoint asserts the client talks to the VIP, not a node's address.
func checkEndpoint(t testing.TB, wc *netlab.WGClient, want netip.Addr, when string) {
	t.Helper()
	ep, err := wc.Endpoint()
	if err != nil {
		t.Fatal(err)
	}
	if ep.Addr() != want || ep.Port() != 51820 {
		t.Fatalf("%s: the client's server endpoint is %s, want %s:51820", when, ep, want)
	}
	t.Logf("%s: client endpoint %s", when, ep)
}

// outage pings through the tunnel while fault runs, and returns the longest
// gap between replies from the fault on.
func outage(t testing.TB, lc *labCluster, target netip.Addr, fault func()) time.Duration {
	t.Helper()
	p, err := lc.client.StartPinger(target, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReplies(5, scaled(10*time.Second)); err != nil {
		p.Stop()
		t.Fatalf("no replies before the fault: %v", err)
	}
	p.Mark()
	fault()
	// Wait until replies flow again (bounded), then a little more.
	start := time.Now()
	n := p.Replies()
	if err := p.WaitReplies(n+10, scaled(30*time.Second)); err != nil {
		t.Logf("replies did not resume within 30s of the fault (%v)", time.Since(start))
	}
	r := p.Stop()
	t.Logf("%s", r)
	return r.LongestGap
}

func kill(t testing.TB, s *labServer, sig syscall.Signal) {
	t.Helper()
	if err := s.proc.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.proc.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit after %v", s.id, sig)
	}
}
