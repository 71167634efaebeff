package test

// The fault-injection suite: real raftguard processes in the namespace lab
// under a write workload (workload_test.go) while faults are injected. It
// runs with `make test-faults` (RAFTGUARD_FAULTS=1), and longer with
// `make soak` (RAFTGUARD_SOAK=1); plain `go test` skips it. After each
// scenario, check verifies that no acknowledged write was lost, that no two
// peers share a key or an address, that every node holds the same state
// (digest), that two nodes never held the VIP at once for more than 500ms,
// that exactly the leader holds the VIP at the end, and that no secret
// appeared in any node's log, metrics or API reads.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/netlab"
	"github.com/raftguard/raftguard/internal/pki"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// maxOverlap is the longest two running nodes may hold the VIP at once.
const maxOverlap = 500 * time.Millisecond

// faultRate is the workload's write rate (attempts per second).
const faultRate = 100

// soak reports whether the suite runs in its long mode.
func soak() bool { return os.Getenv("RAFTGUARD_SOAK") != "" }

// rounds picks the CI or the soak value.
func rounds[T any](ci, long T) T {
	if soak() {
		return long
	}
	return ci
}

// roundsOf is rounds for a number of repetitions, at most
// RAFTGUARD_FAULTS_ROUNDS when that is set (make test-kernel sets it: its
// emulated VM runs each scenario fewer times).
func roundsOf(ci, long int) int {
	n := rounds(ci, long)
	if v, err := strconv.Atoi(os.Getenv("RAFTGUARD_FAULTS_ROUNDS")); err == nil && v > 0 {
		n = min(n, v)
	}
	return n
}

// needFaults skips a test of the suite unless it was asked for.
func needFaults(t *testing.T) {
	t.Helper()
	if os.Getenv("RAFTGUARD_FAULTS") == "" && !soak() {
		t.Skip("fault-injection suite: run it with `make test-faults` (RAFTGUARD_FAULTS=1) or `make soak`")
	}
	needLab(t)
}

// faultCluster is a lab cluster with API clients, a record of which
// processes run, and the secrets to look for in the logs.
type faultCluster struct {
	*labCluster
	t     *testing.T
	tc    *tls.Config
	token string
	lan   map[string]*nodeAPI // from the client host, over the LAN
	local map[string]*nodeAPI // from the node's own namespace (works while it is cut off)
	nl    map[string]*nlHandle

	mu     sync.Mutex      // guards the servers' proc fields and frozen
	frozen map[string]bool // SIGSTOPped servers

	secrets map[string]string // label -> secret that must appear nowhere
}

// nlHandle reads a server's addresses through netlink in its namespace.
type nlHandle struct {
	mu   sync.Mutex // guards h (netlink handles are not safe for concurrent use)
	h    *netlink.Handle
	link netlink.Link
}

type clusterOpts struct {
	extra []string          // flags for every server
	tmpfs map[string]string // server id -> size of a tmpfs mounted on its data dir before it starts
}

func newFaultCluster(t *testing.T, o clusterOpts) *faultCluster {
	needFaults(t)
	lab, err := netlab.New("rgf")
	if err != nil {
		t.Fatal(err)
	}
	lc := &labCluster{t: t, bin: raftguardBinary(t), lab: lab, logDir: t.TempDir()}
	fc := &faultCluster{labCluster: lc, t: t, lan: map[string]*nodeAPI{}, local: map[string]*nodeAPI{},
		nl: map[string]*nlHandle{}, frozen: map[string]bool{}, secrets: map[string]string{}}
	// Cleanups run last-in first-out: the mounts go after the lab has
	// ended the processes using them.
	var mounts []string
	t.Cleanup(func() {
		for _, m := range mounts {
			if err := unix.Unmount(m, 0); err != nil {
				if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
					t.Errorf("unmount %s: %v", m, err)
				}
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range lc.servers {
				if s.proc != nil {
					t.Logf("--- %s output (tail):\n%s", s.id, tail(s.proc.Output(), 60))
				}
			}
			keepLogs(t, lc.logDir)
		}
		fc.mu.Lock()
		for _, s := range lc.servers {
			if fc.frozen[s.id] && s.proc != nil {
				s.proc.Signal(syscall.SIGCONT)
			}
		}
		fc.mu.Unlock()
		for _, a := range fc.lan {
			a.close()
		}
		for _, a := range fc.local {
			a.close()
		}
		for _, h := range fc.nl {
			h.h.Close()
		}
		if err := lab.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("s%d", i)
		h, err := lab.AddHost(id,
			netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i)),
			netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", i)))
		if err != nil {
			t.Fatal(err)
		}
		s := &labServer{id: id, host: h, dir: filepath.Join(t.TempDir(), "data"), wg: lab.Name("rgwg"), extra: o.extra}
		lc.servers = append(lc.servers, s)
		if size, ok := o.tmpfs[id]; ok {
			if err := os.MkdirAll(s.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", s.dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
				t.Fatalf("mount a tmpfs on %s: %v", s.dir, err)
			}
			mounts = append(mounts, s.dir)
		}
		nh, err := openNetlink(h)
		if err != nil {
			t.Fatal(err)
		}
		fc.nl[id] = nh
	}
	if lc.client, err = lab.AddHost("c1", client, netip.MustParsePrefix("2001:db8::50/64")); err != nil {
		t.Fatal(err)
	}
	s1 := lc.servers[0]
	fc.start(s1, "--bootstrap", "--vip", vip4.String(), "--vip", vip6.String(), "--pool", pool4, "--pool6", pool6)
	joinToken := lc.waitFile(filepath.Join(s1.dir, "join.token"))
	fc.token = lc.waitFile(filepath.Join(s1.dir, "admin.token"))
	caPEM := lc.waitFile(filepath.Join(s1.dir, "tls", pki.CACertFile))
	if fc.tc, err = pki.CAClientConfig([]byte(caPEM)); err != nil {
		t.Fatal(err)
	}
	for _, s := range lc.servers {
		addr := s.host.IPv4().Addr().String() + ":7443"
		fc.lan[s.id] = newNodeAPI(s.id, lc.client, addr, fc.tc, fc.token, scaled(8*time.Second))
		fc.local[s.id] = newNodeAPI(s.id, s.host, addr, fc.tc, fc.token, scaled(10*time.Second))
	}
	for _, s := range lc.servers[1:] {
		fc.start(s, "--join", "192.0.2.1:7443", "--token", joinToken)
	}
	fc.waitHealthy(time.Minute)
	fc.collectSecrets()
	return fc
}

// keepLogs copies the nodes' logs of a failed scenario out of the test's
// temporary directory, which is removed, for the post-mortem.
func keepLogs(t *testing.T, dir string) {
	keep, err := os.MkdirTemp("", "raftguard-"+t.Name()+"-")
	if err != nil {
		t.Logf("keeping the logs: %v", err)
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			err = os.WriteFile(filepath.Join(keep, filepath.Base(l)), b, 0o600)
			if err != nil {
				t.Logf("keeping %s: %v", l, err)
			}
		}
	}
	t.Logf("the nodes' logs are kept in %s", keep)
}

// openNetlink opens a netlink handle in the host's namespace, for reading
// the addresses of its eth0.
func openNetlink(h *netlab.Host) (*nlHandle, error) {
	ns, err := netns.GetFromName(h.Namespace())
	if err != nil {
		return nil, fmt.Errorf("namespace of %s: %w", h.Name(), err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", h.Name(), err)
	}
	link, err := nh.LinkByName("eth0")
	if err != nil {
		nh.Close()
		return nil, fmt.Errorf("eth0 of %s: %w", h.Name(), err)
	}
	return &nlHandle{h: nh, link: link}, nil
}

// holds reports whether the IPv4 VIP is on the server's eth0.
func (fc *faultCluster) holds(s *labServer) bool {
	nh := fc.nl[s.id]
	nh.mu.Lock()
	defer nh.mu.Unlock()
	addrs, err := nh.h.AddrList(nh.link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
		ip, ok := netip.AddrFromSlice(a.IP)
		return ok && ip.Unmap() == vip4.Addr()
	})
}

// ---- processes ----

func (fc *faultCluster) start(s *labServer, args ...string) {
	fc.t.Helper()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.labCluster.start(s, args...)
}

func (fc *faultCluster) proc(s *labServer) *netlab.Proc {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return s.proc
}

// running reports whether the server's process runs (started, not exited).
func (fc *faultCluster) running(s *labServer) bool {
	p := fc.proc(s)
	return p != nil && !p.Exited()
}

// serving reports whether the server runs and is not stopped: a killed or
// SIGSTOPped process serves nothing, whatever addresses its NIC keeps.
func (fc *faultCluster) serving(s *labServer) bool {
	fc.mu.Lock()
	frozen := fc.frozen[s.id]
	fc.mu.Unlock()
	return !frozen && fc.running(s)
}

// stop sends sig and waits for the process to exit.
func (fc *faultCluster) stop(s *labServer, sig syscall.Signal) {
	fc.t.Helper()
	p := fc.proc(s)
	if err := p.Signal(sig); err != nil {
		fc.t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		fc.t.Fatalf("%s did not exit within 20s of %v", s.id, sig)
	}
}

// freeze stops the process with SIGSTOP; thaw resumes it.
func (fc *faultCluster) freeze(s *labServer) {
	fc.t.Helper()
	fc.mu.Lock()
	fc.frozen[s.id] = true
	fc.mu.Unlock()
	if err := fc.proc(s).Signal(syscall.SIGSTOP); err != nil {
		fc.t.Fatal(err)
	}
}

func (fc *faultCluster) thaw(s *labServer) {
	fc.t.Helper()
	if err := fc.proc(s).Signal(syscall.SIGCONT); err != nil {
		fc.t.Fatal(err)
	}
	fc.mu.Lock()
	delete(fc.frozen, s.id)
	fc.mu.Unlock()
}

// ---- status ----

// nodeStatus asks a server about itself, from its own namespace.
func (fc *faultCluster) nodeStatus(s *labServer) (httpapi.NodeStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scaled(2*time.Second))
	defer cancel()
	var st httpapi.NodeStatus
	err := fc.local[s.id].get(ctx, "/v1/node", &st)
	return st, err
}

// statuses asks every serving server in parallel.
func (fc *faultCluster) statuses() (map[string]httpapi.NodeStatus, map[string]error) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		out  = map[string]httpapi.NodeStatus{}
		errs = map[string]error{}
	)
	for _, s := range fc.servers {
		if !fc.serving(s) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := fc.nodeStatus(s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[s.id] = err
			} else {
				out[s.id] = st
			}
		}()
	}
	wg.Wait()
	return out, errs
}

func isLeader(st httpapi.NodeStatus) bool { return strings.EqualFold(st.Role, "leader") }

// healthy returns the leader when every serving server answers, exactly
// one leads, the others follow it, and only the leader holds the VIP and
// has its interface up.
func (fc *faultCluster) healthy() (*labServer, error) {
	sts, errs := fc.statuses()
	for id, err := range errs {
		return nil, fmt.Errorf("%s: %v", id, err)
	}
	if len(sts) == 0 {
		return nil, errors.New("no server runs")
	}
	var leader *labServer
	for _, s := range fc.servers {
		if st, ok := sts[s.id]; ok && isLeader(st) {
			if leader != nil {
				return nil, fmt.Errorf("%s and %s both report leader", leader.id, s.id)
			}
			leader = s
		}
	}
	if leader == nil {
		return nil, errors.New("no leader")
	}
	for _, s := range fc.servers {
		st, ok := sts[s.id]
		if !ok {
			continue
		}
		if st.LeaderID != leader.id {
			return nil, fmt.Errorf("%s (%s) names %q as leader, not %s", s.id, st.Role, st.LeaderID, leader.id)
		}
		if want := s == leader; st.InterfaceUp != want || st.VIPHolder != want || fc.holds(s) != want {
			return nil, fmt.Errorf("%s (%s): interface up %v, VIP holder %v, VIP on eth0 %v", s.id, st.Role, st.InterfaceUp, st.VIPHolder, fc.holds(s))
		}
	}
	return leader, nil
}

// waitHealthy polls until the cluster is healthy and returns the leader.
func (fc *faultCluster) waitHealthy(d time.Duration) *labServer {
	fc.t.Helper()
	var leader *labServer
	poll(fc.t, d, func() error {
		var err error
		leader, err = fc.healthy()
		return err
	})
	fc.checkDataplane(leader)
	return leader
}

// checkDataplane is labCluster.checkDataplane with the running servers'
// own statuses.
func (fc *faultCluster) checkDataplane(leader *labServer) {
	fc.t.Helper()
	sts, _ := fc.statuses()
	reported := map[string]string{}
	for id, st := range sts {
		reported[id] = st.Dataplane
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.labCluster.checkDataplane(leader.id, reported)
}

// waitNewHolder waits until a serving server other than old holds the VIP
// and returns it.
func (fc *faultCluster) waitNewHolder(old *labServer, d time.Duration) *labServer {
	fc.t.Helper()
	var holder *labServer
	pollFast(fc.t, d, func() error {
		for _, s := range fc.others(old) {
			if fc.serving(s) && fc.holds(s) {
				holder = s
				return nil
			}
		}
		return errors.New("no other node holds the VIP")
	})
	return holder
}

// pollFast is poll with a 10ms interval, for timing figures.
func pollFast(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	pollEvery(t, d, 10*time.Millisecond, f)
}

// waitAcked waits until the workload has n more acknowledged operations
// than now, so that a phase of a scenario runs under load.
func (fc *faultCluster) waitAcked(wl *workload, n int, d time.Duration) {
	fc.t.Helper()
	base := wl.acked()
	poll(fc.t, d, func() error {
		if got := wl.acked() - base; got < n {
			return fmt.Errorf("%d of %d writes acknowledged", got, n)
		}
		return nil
	})
}

// logOf returns what the server has logged in this test, over restarts.
func (fc *faultCluster) logOf(s *labServer) string {
	b, err := os.ReadFile(filepath.Join(fc.logDir, s.id+".log"))
	if err != nil {
		fc.t.Fatal(err)
	}
	return string(b)
}

// ---- the VIP sampler ----

// vipWatch reads every server's addresses every 50ms. It records the
// longest time two serving servers held the VIP at once (overlap), the
// same counting every NIC, those of killed and stopped processes too
// (raw: the VIP lease bounds it to fenceLimit after a fault), and how
// often the holder changed.
type vipWatch struct {
	fc   *faultCluster
	stop chan struct{}
	done chan struct{}

	mu                  sync.Mutex // guards the fields below
	since, sinceRaw     time.Time
	longest, longestRaw time.Duration
	samples, moves      int
	last                string
	overlapping         string   // holders during the current overlap
	events              []string // overlaps of 100ms or more
}

func (fc *faultCluster) startVIPWatch() *vipWatch {
	vw := &vipWatch{fc: fc, stop: make(chan struct{}), done: make(chan struct{})}
	go vw.run()
	return vw
}

func (vw *vipWatch) run() {
	defer close(vw.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var holders []string
		raw := 0
		for _, s := range vw.fc.servers {
			if !vw.fc.holds(s) {
				continue
			}
			raw++
			if vw.fc.serving(s) {
				holders = append(holders, s.id)
			}
		}
		now := time.Now()
		vw.mu.Lock()
		vw.samples++
		if h := strings.Join(holders, ","); len(holders) == 1 && h != vw.last {
			if vw.last != "" {
				vw.moves++
			}
			vw.last = h
		}
		if len(holders) > 1 {
			vw.overlapping = strings.Join(holders, "+")
		} else if !vw.since.IsZero() {
			vw.endOverlap(now)
		}
		vw.longest, vw.since = overlap(len(holders), now, vw.since, vw.longest)
		vw.longestRaw, vw.sinceRaw = overlap(raw, now, vw.sinceRaw, vw.longestRaw)
		vw.mu.Unlock()
		select {
		case <-vw.stop:
			return
		case <-tick.C:
		}
	}
}

// overlap folds one sample of n holders into the current overlap (since)
// and the longest so far.
func overlap(n int, now, since time.Time, longest time.Duration) (time.Duration, time.Time) {
	switch {
	case n > 1 && since.IsZero():
		return longest, now
	case n > 1:
		return max(longest, now.Sub(since)), since
	default:
		return longest, time.Time{}
	}
}

// endOverlap records the overlap that ends at now if it lasted 100ms or
// more. The caller holds vw.mu.
func (vw *vipWatch) endOverlap(now time.Time) {
	if d := now.Sub(vw.since); d >= 100*time.Millisecond {
		vw.events = append(vw.events, fmt.Sprintf("%s held the VIP together for %s from %s",
			vw.overlapping, ms(d), vw.since.Format("15:04:05.000")))
	}
}

type vipFigures struct {
	Longest, LongestRaw time.Duration
	Samples, Moves      int
	Events              []string // overlaps of 100ms or more
}

func (vw *vipWatch) Stop() vipFigures {
	select {
	case <-vw.stop:
	default:
		close(vw.stop)
	}
	<-vw.done
	vw.mu.Lock()
	defer vw.mu.Unlock()
	if !vw.since.IsZero() {
		vw.endOverlap(time.Now())
	}
	return vipFigures{Longest: vw.longest, LongestRaw: vw.longestRaw, Samples: vw.samples, Moves: vw.moves, Events: vw.events}
}

// ---- the workload and the checker ----

// startWorkload runs the workload against every node over the LAN.
func (fc *faultCluster) startWorkload(rate int) *workload {
	var apis []*nodeAPI
	for _, s := range fc.servers {
		apis = append(apis, fc.lan[s.id])
	}
	wl := startWorkload(fc.t, apis, workloadConfig{Rate: rate})
	fc.t.Cleanup(wl.abort) // a failed scenario does not wait for the drain
	return wl
}

func (w *workload) acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, op := range w.ops {
		if op.acked {
			n++
		}
	}
	return n
}

// figures collects one scenario's numbers and prints them in one line.
type figures struct {
	name  string
	items []string
}

func (f *figures) add(format string, args ...any) {
	f.items = append(f.items, fmt.Sprintf(format, args...))
}

// durs formats a series of durations: the value, or min / median / max
// of several.
func durs(xs []time.Duration) string {
	if len(xs) == 1 {
		return ms(xs[0])
	}
	return durSpread(spreadOf(xs)) + " (min / median / max)"
}

func (f *figures) print() {
	fmt.Printf("FIGURE faults %s: %s\n", f.name, strings.Join(f.items, "; "))
}

// check stops the workload and the sampler and verifies the scenario's
// invariants; it prints the scenario's figures.
func (fc *faultCluster) check(wl *workload, vw *vipWatch, fig *figures) {
	t := fc.t
	t.Helper()
	st := wl.Stop()
	vf := vw.Stop()
	t.Logf("workload: %s", st)
	leader := fc.waitHealthy(time.Minute)

	// Every serving node reaches the same applied state: same digest.
	var idx uint64
	var digest string
	poll(t, 30*time.Second, func() error {
		sts, errs := fc.statuses()
		for id, err := range errs {
			return fmt.Errorf("%s: %v", id, err)
		}
		idx, digest = 0, ""
		for id, s := range sts {
			if s.StateDigest == "" {
				return fmt.Errorf("%s reports no state digest", id)
			}
			if idx == 0 {
				idx, digest = s.StateIndex, s.StateDigest
				continue
			}
			if s.StateIndex != idx {
				return fmt.Errorf("state index %d on %s, %d elsewhere", s.StateIndex, id, idx)
			}
			if s.StateDigest != digest {
				t.Fatalf("nodes diverged: at state index %d, %s has digest %s, another node %s", idx, id, s.StateDigest, digest)
			}
		}
		// The same through GET /v1/cluster, as an operator sees it.
		var cs httpapi.ClusterStatus
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := fc.local[leader.id].get(ctx, "/v1/cluster", &cs); err != nil {
			return err
		}
		for _, n := range cs.Nodes {
			if n.StateDigest != digest {
				return fmt.Errorf("GET /v1/cluster: %s has digest %q at %d, want %s at %d", n.NodeID, n.StateDigest, n.StateIndex, digest, idx)
			}
		}
		return nil
	})

	// Every node's peers against the history.
	models := wl.models()
	var lost, dups []string
	for _, s := range fc.servers {
		var list struct {
			Peers []httpapi.PeerView `json:"peers"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := fc.local[s.id].get(ctx, "/v1/peers", &list)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		l, d := checkPeers(s.id, list.Peers, models)
		lost, dups = append(lost, l...), append(dups, d...)
		if len(l) > 0 && s == fc.servers[0] {
			for _, name := range lostNames(l) {
				t.Logf("history of %s:%s", name, wl.historyOf(name))
			}
		}
	}
	// A lost write shows on every node: count names, not nodes.
	lostWrites := len(slices.Compact(slices.Sorted(slices.Values(lostNames(lost)))))
	for _, v := range st.Violations {
		lost = append(lost, "answer: "+v)
		lostWrites++
	}
	for _, l := range lost {
		t.Errorf("lost write: %s", l)
	}
	// A node that has not replayed its state after a restart knows no
	// token yet: it must say so (503), not reject the valid admin token
	// (401), which also counts towards the client's lockout (429).
	refused := st.Classes["401 unauthorized"]
	if refused > 0 {
		t.Errorf("nodes answered 401 to the valid admin token %d times (and 429 too_many_failures %d times)", refused, st.Classes["429 too_many_failures"])
	}
	for _, d := range dups {
		t.Errorf("duplicate: %s", d)
	}

	// The VIP: never two holders for long; at the end only the leader.
	for _, e := range vf.Events {
		t.Logf("VIP overlap: %s", e)
	}
	if vf.Longest > maxOverlap {
		t.Errorf("two serving nodes held the VIP at once for %v (limit %v)", vf.Longest, maxOverlap)
	}
	if vf.LongestRaw > fenceLimit {
		t.Errorf("two NICs (counting killed and stopped processes) held the VIP at once for %v (limit %v after a fault)", vf.LongestRaw, fenceLimit)
	}
	var holders []string
	for _, s := range fc.servers {
		if fc.holds(s) {
			holders = append(holders, s.id)
		}
	}
	if len(holders) != 1 || holders[0] != leader.id {
		t.Errorf("at the end the VIP is on %v; the leader is %s", holders, leader.id)
	}

	leaks := fc.scanSecrets(wl)
	for _, l := range leaks {
		t.Errorf("secret leaked: %s", l)
	}

	fig.add("writes acked %d (%.0f/s), lost %d, unknown outcome %d, retried %d, 401 to the valid token %d; write latency median %s, p99 %s",
		st.Acked, float64(st.Acked)/max(st.Duration.Seconds(), 0.001), lostWrites, st.Unknown, st.Retried, refused,
		ms(st.Latency.Median), ms(st.P99))
	fig.add("longest VIP overlap %s (%s counting every NIC, killed and stopped processes too), %d VIP moves, %d samples",
		ms(vf.Longest), ms(vf.LongestRaw), vf.Moves, vf.Samples)
	fig.add("state digest equal on all nodes at index %d", idx)
	fig.add("secrets checked %d, leaked %d", len(fc.secrets)+len(wl.presharedKeys()), len(leaks))
	fig.print()
}

// ---- secrets ----

// collectSecrets gathers the cluster's secrets: the WireGuard private key,
// the CA key and the join token from a snapshot of the replicated state,
// the admin token, and every node's TLS key.
func (fc *faultCluster) collectSecrets() {
	t := fc.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ans, err := fc.local["s1"].call(ctx, http.MethodGet, "/v1/cluster/snapshot", nil)
	if err != nil || ans.status != http.StatusOK {
		t.Fatalf("snapshot: %v %d", err, ans.status)
	}
	dec := json.NewDecoder(strings.NewReader(string(ans.body)))
	var header struct {
		Format string `json:"format"`
	}
	var meta struct {
		Settings struct {
			PrivateKey string `json:"private_key"`
		} `json:"settings"`
		Cluster struct {
			CAKeyPEM  string `json:"ca_key_pem"`
			JoinToken string `json:"join_token"`
		} `json:"cluster"`
	}
	if err := dec.Decode(&header); err != nil {
		t.Fatalf("snapshot header: %v", err)
	}
	if err := dec.Decode(&meta); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if meta.Settings.PrivateKey == "" || meta.Cluster.CAKeyPEM == "" || meta.Cluster.JoinToken == "" {
		t.Fatal("the snapshot lacks the server key, the CA key or the join token")
	}
	fc.secrets["server private key"] = meta.Settings.PrivateKey
	fc.secrets["join token"] = meta.Cluster.JoinToken
	fc.secrets["admin token"] = fc.token
	pemLines(fc.secrets, "CA key", meta.Cluster.CAKeyPEM)
	for _, s := range fc.servers {
		b, err := os.ReadFile(filepath.Join(s.dir, "tls", pki.NodeKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		pemLines(fc.secrets, s.id+" TLS key", string(b))
		if b, err := os.ReadFile(filepath.Join(s.dir, "admin.token")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			fc.secrets[s.id+" admin token"] = strings.TrimSpace(string(b))
		}
	}
}

// pemLines adds the body lines of a PEM block: any of them in a log is a
// leak, even if the whole block never appears.
func pemLines(into map[string]string, label, pem string) {
	n := 0
	for _, l := range strings.Split(pem, "\n") {
		if l = strings.TrimSpace(l); len(l) >= 32 && !strings.HasPrefix(l, "-----") {
			n++
			into[fmt.Sprintf("%s PEM line %d", label, n)] = l
		}
	}
}

var (
	base64Key = regexp.MustCompile(`[A-Za-z0-9+/]{43}=`)
	hexKey    = regexp.MustCompile(`[0-9a-fA-F]{64}`)
)

// scanSecrets looks for every secret in every node's log, metrics and API
// reads, and returns what it found where.
func (fc *faultCluster) scanSecrets(wl *workload) []string {
	texts := map[string]string{}
	for _, s := range fc.servers {
		texts[s.id+" log"] = withoutBanner(fc.logOf(s))
		if !fc.serving(s) {
			continue
		}
		for _, path := range []string{"/metrics", "/v1/peers", "/v1/cluster", "/v1/node", "/v1/interface"} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ans, err := fc.local[s.id].call(ctx, http.MethodGet, path, nil)
			cancel()
			if err == nil {
				texts[s.id+" GET "+path] = string(ans.body)
			}
		}
	}
	// Keys (32 bytes): look each base64 or hex word up; other secrets by
	// substring.
	keys := map[string]string{}
	addKey := func(label, b64 string) {
		keys[b64] = label
		if raw, err := base64.StdEncoding.DecodeString(b64); err == nil {
			keys[strings.ToLower(hex.EncodeToString(raw))] = label + " (hex)"
		}
	}
	for i, psk := range wl.presharedKeys() {
		addKey(fmt.Sprintf("workload preshared key #%d", i+1), psk)
	}
	addKey("server private key", fc.secrets["server private key"])
	var leaks []string
	for where, text := range texts {
		for _, w := range base64Key.FindAllString(text, -1) {
			if label, ok := keys[w]; ok {
				leaks = append(leaks, fmt.Sprintf("%s in %s", label, where))
			}
		}
		for _, w := range hexKey.FindAllString(text, -1) {
			if label, ok := keys[strings.ToLower(w)]; ok {
				leaks = append(leaks, fmt.Sprintf("%s in %s", label, where))
			}
		}
		for label, secret := range fc.secrets {
			if strings.Contains(text, secret) {
				leaks = append(leaks, fmt.Sprintf("%s in %s", label, where))
			}
		}
	}
	slices.Sort(leaks)
	return slices.Compact(leaks)
}

// ---- the scenarios ----

// TestFaultsKillLeader: kill -9 of the leader every 10s, ten times (thirty
// in soak mode), under 100 writes/s. The killed node is restarted from its
// data dir at once and rejoins as a follower before the next kill.
func TestFaultsKillLeader(t *testing.T) {
	fc := newFaultCluster(t, clusterOpts{})
	wl := fc.startWorkload(faultRate)
	vw := fc.startVIPWatch()
	fig := &figures{name: "kill -9 of the leader"}
	kills := roundsOf(10, 30)
	const every = 10 * time.Second
	var moves, gaps, fenced []time.Duration
	last := time.Now()
	for i := range kills {
		// Every 10s, once the restarted node is back (it may take longer).
		time.Sleep(time.Until(last.Add(every))) // the fault's cadence
		leader := fc.waitHealthy(30 * time.Second)
		if i > 0 {
			gaps = append(gaps, time.Since(last))
		}
		last = time.Now()
		vipGone := watchVIPGone(t, leader, last, 2*fenceLimit)
		fc.stop(leader, syscall.SIGKILL)
		holder := fc.waitNewHolder(leader, 15*time.Second)
		moves = append(moves, time.Since(last))
		// Nobody cleans up after the killed process: its VIP lease runs
		// out by itself.
		fenced = append(fenced, vipGone())
		if err := fc.servesNothing(leader); err != nil {
			t.Errorf("kill %d: the killed leader: %v", i+1, err)
		}
		fc.start(leader)
		t.Logf("kill %d: %s killed at %s, VIP on %s after %v; restarted at %s", i+1, leader.id, last.Format("15:04:05.000"),
			holder.id, moves[len(moves)-1].Round(time.Millisecond), time.Now().Format("15:04:05.000"))
	}
	fc.waitHealthy(30 * time.Second)
	fig.add("%d kills, %s between kills", kills, durs(gaps))
	fig.add("VIP moved after %s", durs(moves))
	fig.add("VIP gone from the killed leader's NIC after %s", durs(fenced))
	for _, d := range fenced {
		if d > fenceLimit {
			t.Errorf("the killed leader's NIC held the VIP %v after the kill, want at most %v", d, fenceLimit)
		}
	}
	for _, m := range moves {
		if m > scaled(3*time.Second) {
			t.Errorf("the VIP moved %v after a kill of the leader, want within %v", m, scaled(3*time.Second))
		}
	}
	fc.check(wl, vw, fig)
}

// TestFaultsPartitionLeader: the leader is cut off from the LAN (nftables
// drops everything on its link) under load. It releases the VIP and brings
// its interface down within 2s; writes sent to it answer 503; the majority
// elects a new leader; after healing the old leader rejoins as a follower.
func TestFaultsPartitionLeader(t *testing.T) {
	fc := newFaultCluster(t, clusterOpts{})
	wl := fc.startWorkload(faultRate)
	vw := fc.startVIPWatch()
	fig := &figures{name: "leader partitioned into a minority"}
	var released, moved, rejoined, probeLatency []time.Duration
	for round := range roundsOf(2, 5) {
		fc.waitAcked(wl, 200, time.Minute)
		old := fc.waitHealthy(30 * time.Second)
		// The cut takes effect when nft commits its ruleset, at the end of
		// Isolate: starting nft alone takes seconds in the emulated test VM.
		if err := old.host.Isolate(); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		pollFast(t, 5*time.Second, func() error {
			if fc.holds(old) {
				return errors.New("the cut-off leader still holds the VIP")
			}
			if fc.interfaceUp(old) {
				return errors.New("the cut-off leader's interface is still up")
			}
			return nil
		})
		released = append(released, time.Since(cut))
		holder := fc.waitNewHolder(old, 15*time.Second)
		moved = append(moved, time.Since(cut))
		if err := fc.servesNothing(old); err != nil {
			t.Errorf("round %d: the cut-off leader: %v", round+1, err)
		}
		if d := released[len(released)-1]; d > scaled(2*time.Second) {
			t.Errorf("the cut-off leader released the VIP and its interface after %v, want within %v", d, scaled(2*time.Second))
		}

		// A write sent to the cut-off node answers 503. It is a create,
		// finished through the majority after healing like any retry.
		kp, err := wgkey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		psk, err := wgkey.Preshared()
		if err != nil {
			t.Fatal(err)
		}
		probe := &opRecord{kind: opCreate, name: fmt.Sprintf("probe-%d", round), key: kp.Public, psk: psk, via: old.id, start: time.Now()}
		wl.record(probe)
		class, done := wl.attempt(probe, fc.local[old.id])
		wl.count(class)
		probeLatency = append(probeLatency, time.Since(probe.start))
		if done || !strings.HasPrefix(class, "503") {
			t.Errorf("a write to the cut-off leader answered %q, want 503", class)
		}
		t.Logf("round %d: %s cut off; VIP released after %v, on %s after %v; a write to it answered %q after %v",
			round+1, old.id, released[len(released)-1].Round(time.Millisecond), holder.id,
			moved[len(moved)-1].Round(time.Millisecond), class, probeLatency[len(probeLatency)-1].Round(time.Millisecond))
		// Reads on the cut-off node are still served from its replica.
		if err := fc.local[old.id].get(context.Background(), "/v1/peers", nil); err != nil {
			t.Errorf("a read on the cut-off node: %v", err)
		}

		fc.waitAcked(wl, 300, time.Minute) // the majority serves writes
		newLeader, err := fc.nodeStatus(holder)
		if err != nil {
			t.Fatal(err)
		}
		heal := time.Now()
		if err := old.host.Heal(); err != nil {
			t.Fatal(err)
		}
		poll(t, 30*time.Second, func() error {
			st, err := fc.nodeStatus(old)
			if err != nil {
				return err
			}
			if isLeader(st) || st.LeaderID == "" || st.LeaderID == old.id {
				return fmt.Errorf("%s is %s, leader %q", old.id, st.Role, st.LeaderID)
			}
			if st.AppliedIndex < newLeader.CommitIndex {
				return fmt.Errorf("%s applied %d of %d", old.id, st.AppliedIndex, newLeader.CommitIndex)
			}
			return nil
		})
		rejoined = append(rejoined, time.Since(heal))
		if _, err := fc.healthy(); err != nil {
			t.Logf("just after the rejoin: %v", err)
		}
		if st, _ := fc.nodeStatus(old); isLeader(st) {
			t.Errorf("%s took leadership back after healing", old.id)
		}
		wl.retry(probe, 0, newAvoidance(len(wl.apis)), true)
		if !probe.acked {
			t.Errorf("the create first sent to the cut-off leader did not succeed through the majority: %d %s", probe.status, probe.violation)
		}
	}
	fig.add("VIP released and interface down after %s, VIP on a new leader after %s",
		durs(released), durs(moved))
	fig.add("write to the cut-off node answered 503 after %s", durs(probeLatency))
	fig.add("rejoined as follower and caught up %s after healing", durs(rejoined))
	fc.check(wl, vw, fig)
}

// TestFaultsStopLeader: SIGSTOP of the leader for 10s, then SIGCONT. The
// stopped process no longer renews its VIP lease: the kernel removes the
// VIP from its NIC within fenceLimit, and it serves nothing. Once resumed
// it must not hold the VIP (it drops it within 500ms should it have it)
// and never claims it again in its stale term.
func TestFaultsStopLeader(t *testing.T) {
	fc := newFaultCluster(t, clusterOpts{})
	wl := fc.startWorkload(faultRate)
	vw := fc.startVIPWatch()
	fig := &figures{name: "SIGSTOP of the leader for 10s"}
	var moved, fenced, dropped, steppedDown []time.Duration
	for round := range roundsOf(2, 5) {
		fc.waitAcked(wl, 200, time.Minute)
		old := fc.waitHealthy(30 * time.Second)
		st0, err := fc.nodeStatus(old)
		if err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		vipGone := watchVIPGone(t, old, stopped, 2*fenceLimit)
		fc.freeze(old)
		holder := fc.waitNewHolder(old, 15*time.Second)
		moved = append(moved, time.Since(stopped))
		fenced = append(fenced, vipGone())
		if d := fenced[len(fenced)-1]; d > fenceLimit {
			t.Errorf("round %d: the stopped leader's NIC held the VIP %v after SIGSTOP, want at most %v", round+1, d, fenceLimit)
		}
		if err := fc.servesNothing(old); err != nil {
			t.Errorf("round %d: the stopped leader: %v", round+1, err)
		}
		time.Sleep(time.Until(stopped.Add(10 * time.Second))) // the fault's duration
		cont := time.Now()
		fc.thaw(old)
		// It drops the VIP at once...
		pollFast(t, 5*time.Second, func() error {
			if fc.holds(old) {
				return errors.New("the resumed node still holds the VIP")
			}
			return nil
		})
		dropped = append(dropped, time.Since(cont))
		// ...learns the new term, and never holds the VIP again unless
		// elected anew in a later term.
		var st httpapi.NodeStatus
		poll(t, 10*time.Second, func() error {
			if st, err = fc.nodeStatus(old); err != nil {
				return err
			}
			if st.Term <= st0.Term {
				return fmt.Errorf("%s is %s in term %d (stale term %d)", old.id, st.Role, st.Term, st0.Term)
			}
			return nil
		})
		steppedDown = append(steppedDown, time.Since(cont))
		watchEnd := time.Now().Add(3 * time.Second)
		for time.Now().Before(watchEnd) {
			if fc.holds(old) {
				if st, err := fc.nodeStatus(old); err != nil || !isLeader(st) || st.Term <= st0.Term {
					t.Errorf("%s holds the VIP again after SIGCONT without a new term (%s term %d, stale term %d, %v)", old.id, st.Role, st.Term, st0.Term, err)
					break
				}
			}
			time.Sleep(50 * time.Millisecond) // sampling window
		}
		t.Logf("round %d: %s stopped in term %d; VIP on %s after %v; after SIGCONT it dropped the VIP in %v and was in term %d after %v",
			round+1, old.id, st0.Term, holder.id, moved[len(moved)-1].Round(time.Millisecond),
			dropped[len(dropped)-1].Round(time.Millisecond), st.Term, steppedDown[len(steppedDown)-1].Round(time.Millisecond))
		if d := dropped[len(dropped)-1]; d > maxOverlap {
			t.Errorf("the resumed stale leader held the VIP for %v after SIGCONT", d)
		}
	}
	fig.add("VIP on a new leader after %s", durs(moved))
	fig.add("VIP gone from the stopped leader's NIC after %s", durs(fenced))
	fig.add("after SIGCONT the stale leader dropped the VIP in %s and reported the new term after %s",
		durs(dropped), durs(steppedDown))
	fc.check(wl, vw, fig)
}

// Raft settings that make the leader snapshot and compact its log within
// seconds under the workload.
const (
	snapThreshold = 64
	trailingLogs  = 32
)

// TestFaultsFollowerSnapshotInstall: a follower cut off long enough for the
// leader to snapshot and compact its log past the follower's last entry;
// after healing it catches up through a snapshot install.
func TestFaultsFollowerSnapshotInstall(t *testing.T) {
	fc := newFaultCluster(t, clusterOpts{extra: []string{
		"--raft-snapshot-threshold", fmt.Sprint(snapThreshold),
		"--raft-snapshot-interval", "1s",
		"--raft-trailing-logs", fmt.Sprint(trailingLogs),
	}})
	wl := fc.startWorkload(faultRate)
	vw := fc.startVIPWatch()
	fig := &figures{name: "follower partitioned past a log compaction"}
	var catchUp []time.Duration
	for round := range roundsOf(1, 3) {
		fc.waitAcked(wl, 200, time.Minute)
		leader := fc.waitHealthy(30 * time.Second)
		f := fc.others(leader)[round%2]
		fst, err := fc.nodeStatus(f)
		if err != nil {
			t.Fatal(err)
		}
		installsBefore := strings.Count(fc.logOf(f), "Installed remote snapshot")
		compactsBefore := strings.Count(fc.logOf(leader), "compacting logs")
		if err := f.host.Isolate(); err != nil {
			t.Fatal(err)
		}
		// The leader snapshots and compacts well past the follower's index.
		poll(t, 2*time.Minute, func() error {
			st, err := fc.nodeStatus(leader)
			if err != nil {
				return err
			}
			if c := strings.Count(fc.logOf(leader), "compacting logs") - compactsBefore; c < 2 || st.AppliedIndex < fst.LastIndex+4*(snapThreshold+trailingLogs) {
				return fmt.Errorf("leader at %d, follower at %d, %d compactions", st.AppliedIndex, fst.LastIndex, c)
			}
			return nil
		})
		target, err := fc.nodeStatus(leader)
		if err != nil {
			t.Fatal(err)
		}
		heal := time.Now()
		if err := f.host.Heal(); err != nil {
			t.Fatal(err)
		}
		poll(t, time.Minute, func() error {
			st, err := fc.nodeStatus(f)
			if err != nil {
				return err
			}
			if st.AppliedIndex < target.AppliedIndex {
				return fmt.Errorf("%s applied %d of %d", f.id, st.AppliedIndex, target.AppliedIndex)
			}
			return nil
		})
		catchUp = append(catchUp, time.Since(heal))
		if n := strings.Count(fc.logOf(f), "Installed remote snapshot") - installsBefore; n < 1 {
			t.Errorf("%s caught up without a snapshot install", f.id)
		}
		t.Logf("round %d: %s cut off at index %d; leader compacted past %d; caught up %v after healing",
			round+1, f.id, fst.LastIndex, target.AppliedIndex, catchUp[len(catchUp)-1].Round(time.Millisecond))
	}
	fig.add("follower caught up through a snapshot install %s after healing", durs(catchUp))
	fc.check(wl, vw, fig)
}

// TestFaultsRestarts: every node killed with SIGKILL at once and restarted,
// then a rolling restart (SIGTERM, start, wait until healthy) under load.
func TestFaultsRestarts(t *testing.T) {
	fc := newFaultCluster(t, clusterOpts{})
	wl := fc.startWorkload(faultRate)
	vw := fc.startVIPWatch()
	fig := &figures{name: "restarts"}
	var whole, rolling []time.Duration
	for range roundsOf(1, 3) {
		fc.waitAcked(wl, 300, time.Minute)
		down := time.Now()
		for _, s := range fc.servers {
			if err := fc.proc(s).Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range fc.servers {
			<-fc.proc(s).Done()
		}
		for _, s := range fc.servers {
			fc.start(s)
		}
		fc.waitHealthy(time.Minute)
		whole = append(whole, time.Since(down))
		t.Logf("all nodes killed and restarted: healthy after %v", whole[len(whole)-1].Round(time.Millisecond))

		fc.waitAcked(wl, 300, time.Minute)
		leader := fc.waitHealthy(30 * time.Second)
		for _, s := range append(fc.others(leader), leader) {
			at := time.Now()
			fc.stop(s, syscall.SIGTERM)
			fc.start(s)
			fc.waitHealthy(time.Minute)
			rolling = append(rolling, time.Since(at))
			t.Logf("rolling restart of %s: healthy again after %v", s.id, rolling[len(rolling)-1].Round(time.Millisecond))
			fc.waitAcked(wl, 100, time.Minute)
		}
	}
	fig.add("all killed at once: healthy %s after the kill", durs(whole))
	fig.add("rolling restart: each node healthy again %s after its SIGTERM", durs(rolling))
	fc.check(wl, vw, fig)
}

// TestFaultsFlappingLink: the leader's link goes down and up every 200ms
// for 30s (3 minutes in soak mode). Afterwards every node answers, the
// cluster settles, and the VIP is where leadership is.
func TestFaultsFlappingLink(t *testing.T) {
	fc := newFaultCluster(t, clusterOpts{})
	wl := fc.startWorkload(faultRate)
	vw := fc.startVIPWatch()
	fig := &figures{name: "flapping leader link"}
	fc.waitAcked(wl, 200, time.Minute)
	leader := fc.waitHealthy(30 * time.Second)
	flap := rounds(30*time.Second, 3*time.Minute)
	ackedBefore := wl.acked()
	toggles := 0
	tick := time.NewTicker(200 * time.Millisecond)
	start := time.Now()
	up := true
	for time.Since(start) < flap {
		<-tick.C // the fault's cadence
		var err error
		if up {
			err = leader.host.LinkDown()
		} else {
			err = leader.host.LinkUp()
		}
		if err != nil {
			tick.Stop()
			t.Fatal(err)
		}
		up = !up
		toggles++
	}
	tick.Stop()
	if !up {
		if err := leader.host.LinkUp(); err != nil {
			t.Fatal(err)
		}
		toggles++
	}
	during := wl.acked() - ackedBefore
	end := time.Now()
	final := fc.waitHealthy(time.Minute)
	settle := time.Since(end)
	t.Logf("%d toggles of %s's link over %v; %d writes acked meanwhile; settled after %v with %s leading",
		toggles, leader.id, time.Since(start).Round(time.Millisecond), during, settle.Round(time.Millisecond), final.id)
	fc.waitAcked(wl, 200, time.Minute) // writes flow again
	fig.add("%d toggles over %v, %d writes acked meanwhile, settled %s after the last toggle (leader %s → %s)",
		toggles, flap, during, ms(settle), leader.id, final.id)
	fc.check(wl, vw, fig)
}

// TestFaultsDiskFull: the leader's data dir is a small tmpfs; the test
// fills it. The leader steps down, the VIP moves, the node keeps answering
// (with errors) rather than crash, and it recovers once space is freed.
func TestFaultsDiskFull(t *testing.T) {
	fc := newFaultCluster(t, clusterOpts{tmpfs: map[string]string{"s1": "32m"}})
	s1 := fc.servers[0]
	wl := fc.startWorkload(faultRate)
	vw := fc.startVIPWatch()
	fig := &figures{name: "leader's disk full"}
	var moved, recovered []time.Duration
	for round := range roundsOf(1, 3) {
		fc.waitAcked(wl, 200, time.Minute)
		fc.makeLeader(s1)
		fill := filepath.Join(s1.dir, "fill")
		full := time.Now()
		n, err := fillDisk(fill)
		if err != nil {
			t.Fatal(err)
		}
		logAt := len(fc.logOf(s1))
		holder := fc.waitNewHolder(s1, 30*time.Second)
		moved = append(moved, time.Since(full))
		// The majority serves writes while s1's disk is full; s1 keeps
		// running and answering.
		fc.waitAcked(wl, 300, time.Minute)
		if !fc.running(s1) {
			t.Fatalf("s1 exited (code %d) with its disk full:\n%s", fc.proc(s1).ExitCode(), tail(fc.logOf(s1)[logAt:], 30))
		}
		st, err := fc.nodeStatus(s1)
		if err != nil {
			t.Errorf("s1 does not answer with its disk full: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		ans, err := fc.local[s1.id].call(ctx, http.MethodPatch, "/v1/peers/no-such-peer", httpapi.UpdatePeerRequest{})
		cancel()
		t.Logf("round %d: %d MiB filled; VIP on %s after %v; s1 is %s in term %d; a write sent to s1 answered %d %s (%v)",
			round+1, n>>20, holder.id, moved[len(moved)-1].Round(time.Millisecond), st.Role, st.Term, ans.status, ans.code, err)
		for _, l := range strings.Split(fc.logOf(s1)[logAt:], "\n") {
			if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
				t.Logf("s1: %s", l)
			}
		}
		freed := time.Now()
		if err := os.Remove(fill); err != nil {
			t.Fatal(err)
		}
		target, err := fc.nodeStatus(holder)
		if err != nil {
			t.Fatal(err)
		}
		poll(t, time.Minute, func() error {
			if !fc.running(s1) {
				return nil // reported below
			}
			st, err := fc.nodeStatus(s1)
			if err != nil {
				return err
			}
			if st.AppliedIndex < target.CommitIndex {
				return fmt.Errorf("s1 applied %d of %d", st.AppliedIndex, target.CommitIndex)
			}
			return nil
		})
		if !fc.running(s1) {
			t.Fatalf("s1 exited (code %d) after its disk filled up:\n%s", fc.proc(s1).ExitCode(), tail(fc.logOf(s1)[logAt:], 30))
		}
		fc.waitHealthy(time.Minute)
		recovered = append(recovered, time.Since(freed))
	}
	fig.add("VIP moved off the full node after %s; the node caught up %s after space was freed",
		durs(moved), durs(recovered))
	fc.check(wl, vw, fig)
}

// makeLeader hands leadership to s unless it leads already.
func (fc *faultCluster) makeLeader(s *labServer) {
	t := fc.t
	t.Helper()
	l := fc.waitHealthy(time.Minute)
	if l == s {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	ans, err := fc.local[l.id].call(ctx, http.MethodPost, "/v1/cluster/transfer-leader", httpapi.TransferRequest{To: s.id})
	cancel()
	if err != nil || ans.status != http.StatusOK {
		t.Fatalf("transfer leadership to %s: %v %d %s", s.id, err, ans.status, ans.code)
	}
	poll(t, 30*time.Second, func() error {
		l, err := fc.healthy()
		if err == nil && l != s {
			err = fmt.Errorf("%s leads", l.id)
		}
		return err
	})
}

// fillDisk writes zeros to path until the file system is full and returns
// how much it wrote.
func fillDisk(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// withoutBanner removes the bootstrap banner from a node's output: it
// shows the first admin token and the join token once, on purpose, to the
// operator who bootstraps (it is not a log line).
func withoutBanner(out string) string {
	start := strings.Index(out, "raftguard: created a new cluster")
	if start < 0 {
		return out
	}
	end := strings.Index(out[start:], "Join more servers with:")
	if end < 0 {
		return out
	}
	return out[:start] + out[start+end:]
}

// lostNames picks the peer names out of checkPeers' descriptions.
func lostNames(lost []string) []string {
	var out []string
	for _, l := range lost {
		if f := strings.Fields(l); len(f) > 1 {
			out = append(out, f[1])
		}
	}
	return out
}
