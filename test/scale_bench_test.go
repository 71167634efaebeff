package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/netlab"
	"github.com/raftguard/raftguard/internal/pki"
)

// The scale benchmarks run real raftguard processes in the namespace lab
// and drive them from this process over HTTPS: an API client whose
// connections are opened inside the lab's client namespace (netlab's
// Host.DialContext), spread over every node. They read each node's
// WireGuard interface with wgctrl (wireguard-go's control sockets are
// shared by all namespaces) and its links and addresses with netlink
// handles opened in its namespace, so that polling costs no process start.
//
// Peers are created with a public key (and preshared key) chosen here and
// one explicit address in the IPv6 tunnel pool (fd00:99::/64): the lab's
// IPv4 pool is a documentation /24, which holds 253 peers, while a peer
// needs an address in one pool only.
//
//	go test -run '^$' -bench Scale -benchtime 1x -timeout 60m ./test/
//
// RAFTGUARD_SCALE_PEERS=1000,10000 picks the registry sizes of
// BenchmarkScaleRegistry (default 1000, 10000, 100000).

// scaleRuns is how many times each repeated measurement runs.
const scaleRuns = 5

// userspaceMaxPeers is the most peers the embedded wireguard-go data plane
// holds (SPEC §2); larger registries run with --dataplane none.
const userspaceMaxPeers = 65535

// scaleCommand reproduces the tables.
const scaleCommand = "go test -run '^$' -bench Scale -benchtime 1x -timeout 60m ./test/"

// scaleLab is a lab cluster with the clients the scale benchmarks poll it
// with.
type scaleLab struct {
	*labCluster
	dataplane string // "userspace" or "none"
	token     string // admin API token
	http      *http.Client
	wg        *wgctrl.Client
	seq       atomic.Int64 // peers created so far by this lab, for names and addresses
	// retried counts creates sent again after a 503 or a lost connection;
	// answered200 counts creates acknowledged with 200 (see create).
	retried, answered200 atomic.Int64

	mu  sync.Mutex                 // guards nlh
	nlh map[string]*netlink.Handle // netlink handles by server id
}

// newScaleLab starts n servers with the given data plane (s1 bootstraps,
// the others join through it) and a client host, logging at info level as
// in production, and waits until they are ready.
func newScaleLab(tb testing.TB, n int, dataplane string) *scaleLab {
	needLab(tb)
	lab, err := netlab.New("rgs")
	if err != nil {
		tb.Fatal(err)
	}
	lc := &labCluster{t: tb, bin: raftguardBinary(tb), lab: lab, logDir: tb.TempDir()}
	sl := &scaleLab{labCluster: lc, dataplane: dataplane, nlh: map[string]*netlink.Handle{}}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, s := range lc.servers {
				if s.proc != nil {
					tb.Logf("--- %s output (tail):\n%s", s.id, tail(s.proc.Output(), 40))
				}
			}
		}
		if err := lab.Close(); err != nil {
			tb.Errorf("lab close: %v", err)
		}
	})
	// Cleanups run last-in first-out: these go before the lab does.
	tb.Cleanup(sl.closeClients)
	extra := []string{"--dataplane", dataplane, "--log-level", "info"}
	for i := 1; i <= n; i++ {
		h, err := lab.AddHost(fmt.Sprintf("s%d", i),
			netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i)),
			netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", i)))
		if err != nil {
			tb.Fatal(err)
		}
		lc.servers = append(lc.servers, &labServer{
			id: fmt.Sprintf("s%d", i), host: h, dir: filepath.Join(tb.TempDir(), "data"),
			wg: lab.Name("rgwg"), extra: extra,
		})
	}
	if lc.client, err = lab.AddHost("c1", client, netip.MustParsePrefix("2001:db8::50/64")); err != nil {
		tb.Fatal(err)
	}
	s1 := lc.servers[0]
	lc.start(s1, "--bootstrap", "--vip", vip4.String(), "--vip", vip6.String(), "--pool", pool4, "--pool6", pool6)
	joinToken := lc.waitFile(filepath.Join(s1.dir, "join.token"))
	var info agent.NodeInfo
	poll(tb, 15*time.Second, func() error {
		info, err = agent.ReadNodeInfo(s1.dir)
		if err == nil && info.AdminToken == "" {
			err = errors.New("no admin token in the data dir yet")
		}
		return err
	})
	caPEM, err := os.ReadFile(info.CACertFile)
	if err != nil {
		tb.Fatal(err)
	}
	tc, err := pki.CAClientConfig(caPEM)
	if err != nil {
		tb.Fatal(err)
	}
	sl.token = info.AdminToken
	sl.http = &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			DialContext:         lc.client.DialContext,
			TLSClientConfig:     tc,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     time.Minute,
			TLSHandshakeTimeout: 10 * time.Second,
		},
	}
	if sl.wg, err = wgctrl.New(); err != nil {
		tb.Fatal(err)
	}
	for _, s := range lc.servers[1:] {
		lc.start(s, "--join", "192.0.2.1:7443", "--token", joinToken)
	}
	sl.waitReady(n, 0, time.Minute)
	return sl
}

func (sl *scaleLab) closeClients() {
	if sl.http != nil {
		sl.http.CloseIdleConnections()
	}
	if sl.wg != nil {
		sl.wg.Close()
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	for id, h := range sl.nlh {
		h.Close()
		delete(sl.nlh, id)
	}
}

// apiBase is the node's API URL on the lab network.
func apiBase(s *labServer) string {
	return "https://" + net.JoinHostPort(s.host.IPv4().Addr().String(), "7443")
}

// call sends one API request to node s and returns the status and body.
func (sl *scaleLab) call(ctx context.Context, s *labServer, method, path string, in any) (int, []byte, error) {
	c := apiclient.Client{Base: apiBase(s), Token: sl.token, HTTP: sl.http}
	ans, err := c.Call(ctx, method, path, in)
	if err != nil {
		return 0, nil, err
	}
	return ans.Status, ans.Body, nil
}

// getJSON reads path from node s into out, within timeout.
func (sl *scaleLab) getJSON(s *labServer, path string, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, data, err := sl.call(ctx, s, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %d %.200s", path, s.id, st, data)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// metrics reads node s's /metrics as a map from series (name and labels)
// to value.
func (sl *scaleLab) metrics(s *labServer) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, data, err := sl.call(ctx, s, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: %d", s.id, st)
	}
	return parseMetrics(data), nil
}

// parseMetrics reads Prometheus text: "series value" lines, comments skipped.
func parseMetrics(data []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// clusterStatus asks the running servers, in order, for GET /v1/cluster.
func (sl *scaleLab) clusterStatus() (httpapi.ClusterStatus, error) {
	var st httpapi.ClusterStatus
	err := errors.New("no server running")
	for _, s := range sl.servers {
		if s.proc == nil || s.proc.Exited() {
			continue
		}
		if err = sl.getJSON(s, "/v1/cluster", 10*time.Second, &st); err == nil {
			return st, nil
		}
	}
	return st, err
}

// waitReady waits until n members answer, one of them leads, every member
// holds the same replicated state with peers peers in it and, with a data
// plane, the leader alone has its interface up and holds the VIP.
func (sl *scaleLab) waitReady(n, peers int, timeout time.Duration) httpapi.ClusterStatus {
	sl.t.Helper()
	var st httpapi.ClusterStatus
	poll(sl.t, timeout, func() error {
		var err error
		if st, err = sl.clusterStatus(); err != nil {
			return err
		}
		if len(st.Nodes) != n || st.LeaderID == "" {
			return fmt.Errorf("cluster: leader %q, %d nodes", st.LeaderID, len(st.Nodes))
		}
		for _, nd := range st.Nodes {
			if !nd.Reachable || nd.AppliedIndex == 0 {
				return fmt.Errorf("node %s not ready (%s)", nd.NodeID, nd.Error)
			}
			if nd.StateDigest == "" || nd.StateDigest != st.Nodes[0].StateDigest {
				return fmt.Errorf("node %s: state differs from %s's", nd.NodeID, st.Nodes[0].NodeID)
			}
			if sl.dataplane != "none" && (nd.NodeID == st.LeaderID) != nd.InterfaceUp {
				return fmt.Errorf("node %s: interface up %v", nd.NodeID, nd.InterfaceUp)
			}
		}
		if sl.dataplane != "none" && st.VIPHolder != st.LeaderID {
			return fmt.Errorf("VIP holder %q, leader %q", st.VIPHolder, st.LeaderID)
		}
		m, err := sl.metrics(sl.server(st.LeaderID))
		if err != nil {
			return err
		}
		if got := int(m["raftguard_peers"]); got != peers {
			return fmt.Errorf("leader holds %d peers, want %d", got, peers)
		}
		return nil
	})
	return st
}

// scalePeer is one peer the benchmarks create.
type scalePeer struct {
	Name      string   `json:"name"`
	PublicKey string   `json:"public_key"`
	PSK       string   `json:"preshared_key"`
	Addresses []string `json:"addresses"`
}

// scalePeerBase is the start of the peers' addresses in the lab's IPv6
// tunnel pool (pool6); the server holds the pool's first address.
var scalePeerBase = netip.MustParseAddr("fd00:99::1:0")

// newScalePeer makes peer number i: a random public key (any 32 bytes are
// a valid Curve25519 public key to WireGuard), a random preshared key as
// `raftguard peer add` would have, and the i-th address of the IPv6 pool.
func newScalePeer(i int64) scalePeer {
	var k [64]byte
	rand.Read(k[:]) // never fails (crypto/rand)
	a := scalePeerBase.As16()
	binary.BigEndian.PutUint64(a[8:], binary.BigEndian.Uint64(a[8:])+uint64(i))
	return scalePeer{
		Name:      fmt.Sprintf("p%d", i),
		PublicKey: base64.StdEncoding.EncodeToString(k[:32]),
		PSK:       base64.StdEncoding.EncodeToString(k[32:]),
		Addresses: []string{netip.AddrFrom16(a).String() + "/128"},
	}
}

// create creates one new peer through node s and returns it once the API
// acknowledged it: 201, or 200 with this very peer (the answer to a create
// that a node retried on the leader after an earlier try's outcome was
// lost). A 503 (no leader) or a lost connection is retried with the same
// peer, as a client would, a few times; the retries are counted.
func (sl *scaleLab) create(ctx context.Context, s *labServer) (scalePeer, error) {
	p := newScalePeer(sl.seq.Add(1))
	for attempt := 1; ; attempt++ {
		st, data, err := sl.call(ctx, s, http.MethodPost, "/v1/peers", p)
		switch {
		case err == nil && st == http.StatusCreated:
			return p, nil
		case err == nil && st == http.StatusOK:
			var got httpapi.PeerView
			if json.Unmarshal(data, &got) == nil && got.Name == p.Name && got.PublicKey == p.PublicKey {
				sl.answered200.Add(1)
				return p, nil
			}
		case ctx.Err() != nil:
			return p, fmt.Errorf("create %s through %s: %w", p.Name, s.id, ctx.Err())
		case attempt < 5 && (err != nil || st == http.StatusServiceUnavailable):
			sl.retried.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond): // back off before the retry
			}
			continue
		}
		if err != nil {
			return p, fmt.Errorf("create %s through %s: %w", p.Name, s.id, err)
		}
		return p, fmt.Errorf("create %s through %s: %d %.300s", p.Name, s.id, st, data)
	}
}

// createLoad makes count creates with conc concurrent clients, each
// request going to the next running server in turn. It returns every
// create's latency and the wall time of the whole load.
func (sl *scaleLab) createLoad(conc, count int) ([]time.Duration, time.Duration, error) {
	return sl.runLoad(conc, count, func(ctx context.Context, s *labServer, _ int) error {
		_, err := sl.create(ctx, s)
		return err
	})
}

// deleteNames deletes the peers p<from>..p<to> with conc concurrent
// clients spread over the servers (a retried delete may find it gone).
func (sl *scaleLab) deleteNames(conc int, from, to int64) error {
	_, _, err := sl.runLoad(conc, int(to-from+1), func(ctx context.Context, s *labServer, i int) error {
		name := fmt.Sprintf("p%d", from+int64(i)-1)
		for attempt := 1; ; attempt++ {
			st, data, err := sl.call(ctx, s, http.MethodDelete, "/v1/peers/"+name, nil)
			switch {
			case err == nil && (st == http.StatusNoContent || st == http.StatusNotFound && attempt > 1):
				return nil
			case ctx.Err() == nil && attempt < 5 && (err != nil || st == http.StatusServiceUnavailable):
				continue
			case err != nil:
				return fmt.Errorf("delete %s through %s: %w", name, s.id, err)
			}
			return fmt.Errorf("delete %s through %s: %d %.300s", name, s.id, st, data)
		}
	})
	return err
}

// runLoad runs op count times (i = 1..count) from conc goroutines, each
// call going to the next running server in turn, and stops at the first
// error. It returns the latency of every successful call and the wall time.
func (sl *scaleLab) runLoad(conc, count int, op func(ctx context.Context, s *labServer, i int) error) ([]time.Duration, time.Duration, error) {
	var targets []*labServer
	for _, s := range sl.servers {
		if s.proc != nil && !s.proc.Exited() {
			targets = append(targets, s)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		next    atomic.Int64
		errOnce sync.Once
		firstEr error
		wg      sync.WaitGroup
	)
	lat := make([][]time.Duration, conc)
	start := time.Now()
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(count) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := op(ctx, targets[int(i)%len(targets)], int(i)); err != nil {
					errOnce.Do(func() { firstEr = err; cancel() })
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return all, elapsed, firstEr
}

// netlinkOf returns a netlink handle in server s's namespace.
func (sl *scaleLab) netlinkOf(s *labServer) (*netlink.Handle, error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if h, ok := sl.nlh[s.id]; ok {
		return h, nil
	}
	ns, err := netns.GetFromName(s.host.Namespace())
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, err
	}
	sl.nlh[s.id] = h
	return h, nil
}

// serving reports whether server s has its WireGuard interface up and the
// IPv4 VIP on its NIC.
func (sl *scaleLab) serving(s *labServer) bool {
	h, err := sl.netlinkOf(s)
	if err != nil {
		return false
	}
	wl, err := h.LinkByName(s.wg)
	if err != nil || wl.Attrs().Flags&net.FlagUp == 0 {
		return false
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return false
	}
	addrs, err := h.AddrList(eth, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vip4.Addr() {
			return true
		}
	}
	return false
}

// interfacePeers counts the peers on server s's WireGuard interface.
func (sl *scaleLab) interfacePeers(s *labServer) (int, error) {
	d, err := sl.wg.Device(s.wg)
	if err != nil {
		return 0, err
	}
	return len(d.Peers), nil
}

// hasPeer reports whether server s's interface holds the public key.
func (sl *scaleLab) hasPeer(s *labServer, key wgtypes.Key) bool {
	d, err := sl.wg.Device(s.wg)
	if err != nil {
		return false
	}
	for _, p := range d.Peers {
		if p.PublicKey == key {
			return true
		}
	}
	return false
}

// rss reads the resident memory of server s's process.
func rss(s *labServer) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.proc.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS for %s", s.id)
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// mibSpread formats a byte-count spread as "min / median / max".
func mibSpread(s spread[int64]) string {
	return fmt.Sprintf("%s / %s / %s", mib(s.Min), mib(s.Median), mib(s.Max))
}

// raftSnapshotSize is the size of the newest Raft snapshot in s's data
// dir (raft/snapshots/ID/state.bin), or -1 if none has been taken.
func raftSnapshotSize(s *labServer) int64 {
	files, _ := filepath.Glob(filepath.Join(s.dir, "raft", "snapshots", "*", "state.bin"))
	var newest time.Time
	size := int64(-1)
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(newest) {
			newest, size = fi.ModTime(), fi.Size()
		}
	}
	return size
}

// BenchmarkScaleControlPlane measures peer creates through HTTPS against
// three raftguard processes in the namespace lab (userspace WireGuard),
// requests spread round-robin over all nodes, at 1, 8, 32 and 128
// concurrent clients: creates per second (five runs each) and the latency
// of every create. It then measures propagation: the time from an
// acknowledged create to the peer being on every node's interface.
func BenchmarkScaleControlPlane(b *testing.B) {
	sl := newScaleLab(b, 3, "userspace")

	// Propagation first, on a small registry: each create is followed by
	// polling every node's interface until the key is on all three.
	const propRuns, propPerRun = scaleRuns, 60
	var prop []time.Duration
	var propP99 []time.Duration
	for range propRuns {
		var run []time.Duration
		for i := range propPerRun {
			via := sl.servers[i%len(sl.servers)]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			p, err := sl.create(ctx, via)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			acked := time.Now()
			key, err := wgtypes.ParseKey(p.PublicKey)
			if err != nil {
				b.Fatal(err)
			}
			pending := append([]*labServer(nil), sl.servers...)
			deadline := acked.Add(30 * time.Second)
			for len(pending) > 0 {
				if time.Now().After(deadline) {
					b.Fatalf("peer %s not on the interfaces of %d nodes 30s after its create", p.Name, len(pending))
				}
				rest := pending[:0]
				for _, s := range pending {
					if !sl.hasPeer(s, key) {
						rest = append(rest, s)
					}
				}
				pending = rest
				if len(pending) > 0 {
					time.Sleep(time.Millisecond)
				}
			}
			run = append(run, time.Since(acked))
		}
		prop = append(prop, run...)
		propP99 = append(propP99, percentile(run, 99))
	}
	seeded := int(sl.seq.Load())

	// Throughput and latency. The levels take turns, and each run's peers
	// are deleted after it, so that every run starts from the same
	// registry.
	levels := []int{1, 8, 32, 128}
	counts := map[int]int{1: 100, 8: 400, 32: 800, 128: 800}
	rates := map[int][]float64{}
	lats := map[int][]time.Duration{}
	p99s := map[int][]time.Duration{}
	retried, ok200 := map[int]int64{}, map[int]int64{}
	for range scaleRuns {
		for _, conc := range levels {
			r0, a0 := sl.retried.Load(), sl.answered200.Load()
			first := sl.seq.Load() + 1
			l, elapsed, err := sl.createLoad(conc, counts[conc])
			if err != nil {
				b.Fatal(err)
			}
			if err := sl.deleteNames(32, first, sl.seq.Load()); err != nil {
				b.Fatal(err)
			}
			retried[conc] += sl.retried.Load() - r0
			ok200[conc] += sl.answered200.Load() - a0
			rates[conc] = append(rates[conc], float64(len(l))/elapsed.Seconds())
			lats[conc] = append(lats[conc], l...)
			p99s[conc] = append(p99s[conc], percentile(l, 99))
		}
	}
	// Every node's interface holds exactly the peers left once the load
	// is over.
	for _, s := range sl.servers {
		poll(b, time.Minute, func() error {
			n, err := sl.interfacePeers(s)
			if err == nil && n != seeded {
				err = fmt.Errorf("%s's interface holds %d peers, want %d", s.id, n, seeded)
			}
			return err
		})
	}

	var rows [][]string
	for _, conc := range levels {
		r := spreadOf(rates[conc])
		rows = append(rows, []string{
			strconv.Itoa(conc),
			fmt.Sprintf("%.0f / %.0f / %.0f", r.Min, r.Median, r.Max),
			ms(percentile(lats[conc], 50)),
			ms(percentile(lats[conc], 99)),
			durSpread(spreadOf(p99s[conc])),
			strconv.Itoa(len(lats[conc])),
			fmt.Sprintf("%d / %d", retried[conc], ok200[conc]),
		})
		b.ReportMetric(r.Median, fmt.Sprintf("creates/s@%d", conc))
		b.ReportMetric(float64(percentile(lats[conc], 99))/float64(time.Millisecond), fmt.Sprintf("p99-ms@%d", conc))
	}
	benchTable(b, fmt.Sprintf("Control plane: peer creates through HTTPS, 3 nodes (userspace WireGuard), requests spread over all nodes; each run starts from %d peers and its peers are deleted after it", seeded),
		scaleCommand,
		[]string{"clients", "creates/s (min / median / max of 5 runs)", "latency p50", "latency p99", "p99 per run (min / median / max)", "creates", "retried after 503 or lost connection / acknowledged with 200"},
		rows)
	ps := spreadOf(propP99)
	benchTable(b, "Propagation: acknowledged create → peer on every node's interface (3 nodes, userspace WireGuard, one create at a time)",
		scaleCommand,
		[]string{"creates", "p50", "p99", "max", "p99 per run of 60 (min / median / max)"},
		[][]string{{strconv.Itoa(len(prop)), ms(percentile(prop, 50)), ms(percentile(prop, 99)), ms(spreadOf(prop).Max), durSpread(ps)}})
	b.ReportMetric(float64(percentile(prop, 99))/float64(time.Millisecond), "propagation-p99-ms")
}

// scaleSizes are the registry sizes of BenchmarkScaleRegistry.
func scaleSizes(tb testing.TB) []int {
	v := os.Getenv("RAFTGUARD_SCALE_PEERS")
	if v == "" {
		return []int{1000, 10000, 100000}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			tb.Fatalf("RAFTGUARD_SCALE_PEERS=%q: want a comma-separated list of peer counts", v)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkScaleRegistry fills the registry of a three-node lab cluster
// with 1,000, 10,000 and 100,000 peers and measures, at each size: resident
// memory per node, snapshot size, `cluster snapshot save` and `restore`
// times, the time for a fourth node to join and be fully configured, and
// the time from the leader's death (SIGKILL) to a new leader serving.
// Registries up to 65,535 peers run on the userspace data plane; larger
// ones with --dataplane none, since a wireguard-go interface holds no more.
func BenchmarkScaleRegistry(b *testing.B) {
	var rows [][]string
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			row := benchScaleRegistry(b, n)
			if row != nil {
				rows = append(rows, row)
			}
		})
	}
	if len(rows) == 0 {
		return
	}
	benchTable(b, "Scale: 3 nodes in the namespace lab, registry filled through the API; repeated figures are min / median / max of 5 runs",
		scaleCommand,
		[]string{"peers", "data plane", "fill (creates/s, 64 clients)", "RSS per node (min / median / max of 3)", "RSS of a joined 4th node",
			"snapshot file", "Raft state.bin", "snapshot save", "snapshot restore", "4th node join → caught up", "leader SIGKILL → new leader serving"},
		rows)
}

// benchScaleRegistry measures one registry size and returns its table row.
func benchScaleRegistry(b *testing.B, n int) []string {
	dataplane := "userspace"
	if n > userspaceMaxPeers {
		dataplane = "none"
	}
	sl := newScaleLab(b, 3, dataplane)
	s1 := sl.servers[0]

	// Fill.
	r0, a0 := sl.retried.Load(), sl.answered200.Load()
	_, fillTime, err := sl.createLoad(64, n)
	if err != nil {
		b.Fatal(err)
	}
	fillRate := float64(n) / fillTime.Seconds()
	fillCell := fmt.Sprintf("%.0f", fillRate)
	if r, a := sl.retried.Load()-r0, sl.answered200.Load()-a0; r+a > 0 {
		fillCell += fmt.Sprintf(" (%d retried after 503 or a lost connection, %d acknowledged with 200)", r, a)
	}
	b.Logf("%d peers created in %v (%.0f/s)", n, fillTime.Round(time.Millisecond), fillRate)
	sl.waitReady(3, n, 5*time.Minute)
	if dataplane != "none" {
		for _, s := range sl.servers {
			poll(b, 2*time.Minute, func() error {
				got, err := sl.interfacePeers(s)
				if err == nil && got != n {
					err = fmt.Errorf("%s's interface holds %d peers, want %d", s.id, got, n)
				}
				return err
			})
		}
	}

	// Resident memory of the three nodes.
	var mem []int64
	for _, s := range sl.servers {
		r, err := rss(s)
		if err != nil {
			b.Fatal(err)
		}
		mem = append(mem, r)
	}

	// Snapshot save and restore through the CLI on s1, each on a settled
	// cluster.
	file := filepath.Join(b.TempDir(), "state.snap")
	saves, saveFails := sl.timedCLI(b, n, s1, "cluster", "snapshot", "save", file)
	fi, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	restores, restoreFails := sl.timedCLI(b, n, s1, "cluster", "snapshot", "restore", file)
	sl.waitReady(3, n, 5*time.Minute)
	raftSnap := raftSnapshotSize(s1)

	joins, joinedRSS := sl.measureJoins(b, n)
	failovers := sl.measureFailovers(b, n)

	raftCell := "none taken"
	if raftSnap >= 0 {
		raftCell = mib(raftSnap)
	}
	dpCell := "userspace (wireguard-go)"
	serveCell := durSpread(spreadOf(failovers)) + " (interface up with every peer, VIP on the NIC)"
	joinCell := durSpread(spreadOf(joins)) + " (applied index and interface with every peer)"
	if dataplane == "none" {
		dpCell = "none: a userspace interface holds at most 65,535 peers, so interface figures are not possible here"
		serveCell = durSpread(spreadOf(failovers)) + " (elected and answering linearizable reads; no interface, no VIP)"
		joinCell = durSpread(spreadOf(joins)) + " (applied index; no interface)"
	}
	b.ReportMetric(float64(spreadOf(failovers).Median)/float64(time.Millisecond), "failover-median-ms")
	b.ReportMetric(float64(spreadOf(joins).Median)/float64(time.Millisecond), "join-median-ms")
	b.ReportMetric(float64(spreadOf(mem).Median)/(1<<20), "rss-MiB")
	return []string{
		strconv.Itoa(n), dpCell, fillCell, mibSpread(spreadOf(mem)), mibSpread(spreadOf(joinedRSS)),
		mib(fi.Size()), raftCell, cliCell(saves, saveFails), cliCell(restores, restoreFails), joinCell, serveCell,
	}
}

// timedCLI runs a client command on server s, each time on a settled
// cluster, until it has succeeded five times or been tried ten times, and
// returns the times of the successes. An attempt that fails because no
// leader was reachable (leader elections under load) is counted and noted
// in the returned text; any other failure ends the benchmark.
func (sl *scaleLab) timedCLI(b *testing.B, peers int, s *labServer, args ...string) ([]time.Duration, string) {
	b.Helper()
	var times []time.Duration
	var failed []string
	for len(times) < scaleRuns && len(times)+len(failed) < 2*scaleRuns {
		sl.waitReady(3, peers, 5*time.Minute)
		t0 := time.Now()
		out, err := sl.cli(s, args...)
		took := time.Since(t0)
		if err == nil {
			times = append(times, took)
			continue
		}
		if !strings.Contains(out, "no_leader") {
			b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		failed = append(failed, ms(took))
		b.Logf("%s failed after %v (no leader reachable)", strings.Join(args, " "), took.Round(time.Millisecond))
	}
	if len(failed) == 0 {
		return times, ""
	}
	return times, fmt.Sprintf(" (%d of %d attempts succeeded; the others answered no_leader after %s)",
		len(times), len(times)+len(failed), strings.Join(failed, ", "))
}

// cliCell formats the times of timedCLI and its note on failures.
func cliCell(times []time.Duration, note string) string {
	if len(times) == 0 {
		return "failed" + note
	}
	return durSpread(spreadOf(times)) + note
}

// measureJoins starts a fourth node on a fresh host five times (s4..s8),
// each time timing from its start to its state machine having applied the
// leader's commit index with every peer and, with a data plane, its
// interface holding every peer. Each new node is stopped and removed
// before the next. It returns the times and the new nodes' RSS.
func (sl *scaleLab) measureJoins(b *testing.B, peers int) ([]time.Duration, []int64) {
	b.Helper()
	token := sl.waitFile(filepath.Join(sl.servers[0].dir, "join.token"))
	var times []time.Duration
	var mem []int64
	for i := range scaleRuns {
		s := sl.addServer(4 + i)
		t0 := time.Now()
		sl.start(s, "--join", "192.0.2.1:7443", "--token", token)
		target := uint64(0) // the leader's commit index once s has every peer
		deadline := t0.Add(5 * time.Minute)
		for {
			if time.Now().After(deadline) {
				b.Fatalf("%s not caught up within 5m", s.id)
			}
			if s.proc.Exited() {
				b.Fatalf("%s exited: %s", s.id, tail(s.proc.Output(), 20))
			}
			if ok := sl.caughtUp(s, peers, &target); ok {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		times = append(times, time.Since(t0))
		r, err := rss(s)
		if err != nil {
			b.Fatal(err)
		}
		mem = append(mem, r)
		// Stop it first (the cluster keeps its quorum of three), then
		// take it out of the configuration.
		if err := s.proc.Stop(syscall.SIGTERM, 20*time.Second); err != nil {
			b.Fatalf("stop %s: %v", s.id, err)
		}
		poll(b, 30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, data, err := sl.call(ctx, sl.servers[0], http.MethodDelete, "/v1/cluster/nodes/"+url.PathEscape(s.id), nil)
			if err == nil && st/100 != 2 {
				err = fmt.Errorf("remove %s: %d %.200s", s.id, st, data)
			}
			return err
		})
		sl.waitReady(3, peers, 2*time.Minute)
	}
	return times, mem
}

// caughtUp reports whether the new node s holds every peer, has applied
// the leader's commit index of the moment it first held them (kept in
// *target), and with a data plane has every peer on its interface.
func (sl *scaleLab) caughtUp(s *labServer, peers int, target *uint64) bool {
	m, err := sl.metrics(s)
	if err != nil || int(m["raftguard_peers"]) != peers {
		return false
	}
	if *target == 0 {
		st, err := sl.clusterStatus()
		if err != nil {
			return false
		}
		for _, nd := range st.Nodes {
			if nd.NodeID == st.LeaderID {
				*target = nd.CommitIndex
			}
		}
		if *target == 0 {
			return false
		}
	}
	if uint64(m["raftguard_raft_applied_index"]) < *target {
		return false
	}
	if sl.dataplane == "none" {
		return true
	}
	got, err := sl.interfacePeers(s)
	return err == nil && got == peers
}

// measureFailovers kills the leader with SIGKILL five times, each time
// timing from the kill to a surviving node serving: with a data plane, its
// interface up holding every peer and the VIP on its NIC; without one,
// elected and answering a linearizable read. The killed node is restarted
// from its data dir and the cluster is let settle before the next round.
func (sl *scaleLab) measureFailovers(b *testing.B, peers int) []time.Duration {
	b.Helper()
	var times []time.Duration
	probe := newScalePeer(1).Name // created by the fill
	for range scaleRuns {
		st := sl.waitReady(3, peers, 5*time.Minute)
		leader := sl.server(st.LeaderID)
		var survivors []*labServer
		for _, s := range sl.servers[:3] {
			if s != leader {
				survivors = append(survivors, s)
			}
		}
		t0 := time.Now()
		kill(b, leader, syscall.SIGKILL)
		deadline := t0.Add(time.Minute)
		var took time.Duration
		for took == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("no node serving within 1m of killing the leader %s", leader.id)
			}
			for _, s := range survivors {
				if sl.servesAfterFailover(s, peers, probe) {
					took = time.Since(t0)
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		times = append(times, took)
		sl.start(leader)
	}
	sl.waitReady(3, peers, 5*time.Minute)
	return times
}

// servesAfterFailover is the test of measureFailovers for one survivor.
func (sl *scaleLab) servesAfterFailover(s *labServer, peers int, probe string) bool {
	if sl.dataplane != "none" {
		if !sl.serving(s) {
			return false
		}
		got, err := sl.interfacePeers(s)
		return err == nil && got == peers
	}
	var h httpapi.Health
	if err := sl.getJSON(s, "/v1/health", 500*time.Millisecond, &h); err != nil || h.Role != "leader" {
		return false
	}
	return sl.getJSON(s, "/v1/peers/"+url.PathEscape(probe)+"?consistent=true", 2*time.Second, nil) == nil
}

func TestParseMetricsAndScalePeers(t *testing.T) {
	m := parseMetrics([]byte("# HELP x y\n# TYPE x gauge\nraftguard_peers 10000\nraftguard_raft_role{role=\"leader\"} 1\nbad\n\nraftguard_raft_applied_index 1.2345e+06\n"))
	if m["raftguard_peers"] != 10000 || m[`raftguard_raft_role{role="leader"}`] != 1 || m["raftguard_raft_applied_index"] != 1234500 || len(m) != 3 {
		t.Fatalf("parseMetrics = %v", m)
	}
	seen := map[string]bool{}
	for _, i := range []int64{1, 2, 65535, 65536, 100000, 1 << 40} {
		p := newScalePeer(i)
		a := netip.MustParsePrefix(p.Addresses[0])
		if !netip.MustParsePrefix(pool6).Contains(a.Addr()) || a.Bits() != 128 {
			t.Fatalf("peer %d address %s is not a host in %s", i, a, pool6)
		}
		if a.Addr() == netip.MustParseAddr("fd00:99::1") || seen[a.String()] {
			t.Fatalf("peer %d address %s is taken", i, a)
		}
		seen[a.String()] = true
		if _, err := wgtypes.ParseKey(p.PublicKey); err != nil {
			t.Fatalf("peer %d key: %v", i, err)
		}
	}
}
