package reconcile

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"

	"github.com/hashicorp/raft"

	"github.com/raftguard/raftguard/dataplane"
	"github.com/raftguard/raftguard/fsm"
)

// fakeDP records what the loop does to the interface.
type fakeDP struct {
	mu         sync.Mutex // guards the fields below
	last       dataplane.Config
	sets       int
	up         bool
	broken     bool // IsUp reports down (someone deleted it)
	handshakes []string
	stats      []dataplane.PeerStats
	closed     bool
	block      chan struct{} // when set, Set waits for it to close (a stuck system call)
}

func (d *fakeDP) Set(cfg dataplane.Config) (bool, error) {
	d.mu.Lock()
	if b := d.block; b != nil {
		d.mu.Unlock()
		<-b
		d.mu.Lock()
	}
	defer d.mu.Unlock()
	d.last, d.up = cfg, cfg.Up
	d.sets++
	return true, nil
}
func (d *fakeDP) Stats() ([]dataplane.PeerStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats, nil
}
func (d *fakeDP) InitiateHandshake(pub string, ep netip.AddrPort) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handshakes = append(d.handshakes, pub+"@"+ep.String())
	return nil
}
func (d *fakeDP) IsUp() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.up && !d.broken, nil
}
func (d *fakeDP) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}
func (d *fakeDP) snapshot() (dataplane.Config, bool, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last, d.up, append([]string(nil), d.handshakes...)
}

type fakeVIPs struct {
	mu       sync.Mutex // guards held, claims, failing, renewals
	held     bool
	claims   int
	failing  bool
	renewals int
}

func (v *fakeVIPs) Claim([]netip.Prefix) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failing {
		return false, errors.New("netlink: operation not permitted")
	}
	v.claims++
	changed := !v.held
	v.held = true
	return changed, nil
}
func (v *fakeVIPs) Release([]netip.Prefix) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	changed := v.held
	v.held = false
	return changed, nil
}
func (v *fakeVIPs) Renew([]netip.Prefix) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.held {
		v.renewals++
	}
	return v.held, nil
}
func (v *fakeVIPs) renewed() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.renewals
}
func (v *fakeVIPs) Held([]netip.Prefix) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.held, nil
}
func (v *fakeVIPs) isHeld() bool { h, _ := v.Held(nil); return h }

type fakeNode struct {
	leader    atomic.Bool
	state     *fsm.FSM
	index     atomic.Uint64
	term      atomic.Uint64
	terms     atomic.Int32 // Term calls: one per pass that may take over
	handovers atomic.Int32
	verifies  atomic.Int32
	wedged    atomic.Bool // VerifyLeader fails (Raft's leader loop does not answer)
	proposed  chan fsm.SetEndpoints
}

func (n *fakeNode) IsLeader() bool { return n.leader.Load() }
func (n *fakeNode) Term() uint64 {
	n.terms.Add(1)
	return n.term.Load()
}
func (n *fakeNode) VerifyLeader(time.Duration) error {
	if n.wedged.Load() || !n.leader.Load() {
		return errors.New("not leader")
	}
	n.verifies.Add(1)
	return nil
}
func (n *fakeNode) State() *fsm.FSM { return n.state }
func (n *fakeNode) Propose(t fsm.CommandType, body any) (any, error) {
	res := n.apply(t, body)
	if se, ok := body.(fsm.SetEndpoints); ok && n.proposed != nil {
		n.proposed <- se
	}
	return res, nil
}
func (n *fakeNode) HandOver() error {
	n.handovers.Add(1)
	n.leader.Store(false)
	return nil
}
func (n *fakeNode) apply(t fsm.CommandType, body any) any {
	b, err := fsm.Encode(t, body)
	if err != nil {
		panic(err)
	}
	return n.state.Apply(&raft.Log{Index: n.index.Add(1), Type: raft.LogCommand, Data: b})
}

func key(i int) string {
	var b [32]byte
	b[0], b[1] = 7, byte(i)
	return base64.StdEncoding.EncodeToString(b[:])
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newNode(t *testing.T) *fakeNode {
	n := &fakeNode{state: fsm.New(nil)}
	res := n.apply(fsm.CmdInit, fsm.Init{
		Settings: fsm.Settings{
			PrivateKey: key(200), PublicKey: key(201), ListenPort: 51820,
			Pool: netip.MustParsePrefix("10.99.0.0/24"), VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")},
			Endpoint: "192.0.2.10:51820", MTU: 1420, Keepalive: 25,
		},
		CACertPEM: "c", CAKeyPEM: "k", JoinToken: "j", AdminToken: fsm.AdminToken{ID: "a", Hash: "h"}, At: t0,
	})
	if err, ok := res.(error); ok {
		t.Fatal(err)
	}
	for i, name := range []string{"old", "recent", "never", "off"} {
		res := n.apply(fsm.CmdAddPeer, fsm.AddPeer{Name: name, PublicKey: key(i), Enabled: name != "off", At: t0})
		if err, ok := res.(error); ok {
			t.Fatal(err)
		}
	}
	n.apply(fsm.CmdSetEndpoints, fsm.SetEndpoints{Updates: []fsm.EndpointUpdate{
		{Name: "old", Endpoint: "198.51.100.1:1000", LastHandshake: t0.Add(time.Minute)},
		{Name: "recent", Endpoint: "198.51.100.2:2000", LastHandshake: t0.Add(time.Hour)},
		{Name: "off", Endpoint: "198.51.100.3:3000", LastHandshake: t0.Add(2 * time.Hour)},
	}})
	return n
}

type harness struct {
	node   *fakeNode
	dp     *fakeDP
	opens  atomic.Int32
	vips   *fakeVIPs
	loop   *Loop
	lead   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, n *fakeNode, sync bool) *harness {
	return startWith(t, n, sync, nil)
}

// startWith starts a loop whose Config edit may change first.
func startWith(t *testing.T, n *fakeNode, sync bool, edit func(*Config)) *harness {
	h := &harness{node: n, vips: &fakeVIPs{}, lead: make(chan struct{}, 1), done: make(chan struct{})}
	h.dp = &fakeDP{}
	cfg := Config{
		Node: n,
		Open: func() (Dataplane, error) {
			h.opens.Add(1)
			h.dp.mu.Lock()
			h.dp.broken = false
			h.dp.mu.Unlock()
			return h.dp, nil
		},
		VIPs:                h.vips,
		Tick:                20 * time.Millisecond,
		DisableEndpointSync: !sync,
	}
	if edit != nil {
		edit(&cfg)
	}
	h.loop = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	started := make(chan error, 1)
	go func() {
		defer close(h.done)
		h.loop.Run(ctx, h.lead, started)
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

// elect makes the node leader in a new term, as the node's leader loop
// does: the barrier goes through, then the loop is told (CaughtUp).
func (h *harness) elect() {
	term := h.node.term.Add(1)
	h.node.leader.Store(true)
	h.lead <- struct{}{}
	h.loop.CaughtUp(term, time.Now())
}

func poll(t *testing.T, what string, f func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 2*time.Millisecond, what, testutil.Holds(f))
}

func TestFollowerKeepsConfigWithInterfaceDown(t *testing.T) {
	h := start(t, newNode(t), false)
	poll(t, "config applied", func() bool { cfg, _, _ := h.dp.snapshot(); return len(cfg.Peers) == 3 })
	cfg, up, hs := h.dp.snapshot()
	if up || cfg.Up || h.vips.isHeld() || len(hs) != 0 {
		t.Fatalf("follower: up=%v vip=%v handshakes=%v", up, h.vips.isHeld(), hs)
	}
	if cfg.PrivateKey != key(200) || cfg.ListenPort != 51820 || cfg.Addresses[0].String() != "10.99.0.1/24" || cfg.SourceAddrs[0].String() != "192.0.2.10" {
		t.Fatalf("config %+v", cfg)
	}
	// A disabled peer is not on the interface.
	for _, p := range cfg.Peers {
		if p.PublicKey == key(3) {
			t.Fatal("disabled peer configured")
		}
	}
}

func TestTakeOverAndStepDown(t *testing.T) {
	n := newNode(t)
	h := start(t, n, false)
	h.elect()
	poll(t, "takeover", func() bool { _, up, hs := h.dp.snapshot(); return up && h.vips.isHeld() && len(hs) == 2 })
	_, _, hs := h.dp.snapshot()
	// Most recently active first; disabled and endpoint-less peers skipped.
	if want := []string{key(1) + "@198.51.100.2:2000", key(0) + "@198.51.100.1:1000"}; fmt.Sprint(hs) != fmt.Sprint(want) {
		t.Fatalf("handshakes %v, want %v", hs, want)
	}
	if st := h.loop.Status(); !st.InterfaceUp || !st.VIPHolder {
		t.Fatalf("status %+v", st)
	}
	n.leader.Store(false)
	h.lead <- struct{}{}
	poll(t, "step down", func() bool { _, up, _ := h.dp.snapshot(); return !up && !h.vips.isHeld() })
	if st := h.loop.Status(); st.InterfaceUp || st.VIPHolder {
		t.Fatalf("status %+v", st)
	}
}

// TestServesOnlyAfterTheTermsBarrier: a leader serves only once it was told
// that a barrier went through in its current term, not in an earlier one.
func TestServesOnlyAfterTheTermsBarrier(t *testing.T) {
	n := newNode(t)
	h := start(t, n, false)
	n.term.Store(5)
	h.loop.CaughtUp(4, time.Now()) // an earlier term's barrier
	n.leader.Store(true)
	h.lead <- struct{}{}
	passes := n.terms.Load()
	poll(t, "passes as leader", func() bool { return n.terms.Load() >= passes+3 })
	if _, up, _ := h.dp.snapshot(); up || h.vips.isHeld() {
		t.Fatal("the leader serves before the barrier of its term")
	}
	h.loop.CaughtUp(5, time.Now())
	poll(t, "takeover after the barrier", func() bool { _, up, _ := h.dp.snapshot(); return up && h.vips.isHeld() })
}

func TestLeaderRepairsVIPAndInterface(t *testing.T) {
	n := newNode(t)
	h := start(t, n, false)
	h.elect()
	poll(t, "takeover", func() bool { _, up, _ := h.dp.snapshot(); return up && h.vips.isHeld() })
	h.vips.Release(nil) // removed by hand
	poll(t, "VIP reclaimed", h.vips.isHeld)
	opens := h.opens.Load()
	h.dp.mu.Lock()
	h.dp.broken = true // interface deleted
	h.dp.mu.Unlock()
	poll(t, "interface reopened", func() bool { return h.opens.Load() > opens })
	poll(t, "interface up", func() bool { up, _ := h.dp.IsUp(); return up })
}

func TestLeaderHandsOverWhenRepairFails(t *testing.T) {
	n := newNode(t)
	h := start(t, n, false)
	h.vips.failing = true
	h.elect()
	poll(t, "handover", func() bool { return n.handovers.Load() > 0 })
	poll(t, "interface down", func() bool { _, up, _ := h.dp.snapshot(); return !up })
}

func TestConfigFollowsState(t *testing.T) {
	n := newNode(t)
	h := start(t, n, false)
	n.apply(fsm.CmdAddPeer, fsm.AddPeer{Name: "new", PublicKey: key(50), Enabled: true, At: t0})
	h.loop.Wake()
	poll(t, "new peer", func() bool { cfg, _, _ := h.dp.snapshot(); return len(cfg.Peers) == 4 })
	n.apply(fsm.CmdUpdatePeer, fsm.UpdatePeer{Name: "new", Enabled: new(bool), At: t0})
	h.loop.Wake()
	poll(t, "disabled peer removed", func() bool { cfg, _, _ := h.dp.snapshot(); return len(cfg.Peers) == 3 })
}

func TestEndpointSyncRecordsChanges(t *testing.T) {
	n := newNode(t)
	n.proposed = make(chan fsm.SetEndpoints, 10)
	h := start(t, n, true)
	h.dp.mu.Lock()
	h.dp.stats = []dataplane.PeerStats{
		{PublicKey: key(0), Endpoint: netip.MustParseAddrPort("198.51.100.1:1000"), LastHandshake: t0.Add(2 * time.Minute)}, // unchanged enough
		{PublicKey: key(2), Endpoint: netip.MustParseAddrPort("203.0.113.9:5555"), LastHandshake: t0.Add(3 * time.Hour)},    // new endpoint
	}
	h.dp.mu.Unlock()
	h.elect()
	select {
	case se := <-n.proposed:
		if len(se.Updates) != 1 || se.Updates[0].Name != "never" || se.Updates[0].Endpoint != "203.0.113.9:5555" {
			t.Fatalf("proposed %+v", se.Updates)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no endpoint update proposed")
	}
	if p, _ := n.state.Peer("never"); p.Endpoint != "203.0.113.9:5555" {
		t.Fatalf("state %+v", p)
	}
}

// More enabled peers than the data plane holds: the oldest are configured,
// the newest left off, and the leader keeps serving (no handover: every
// node would fail alike).
func TestPeerLimitKeepsOldestPeers(t *testing.T) {
	n := newNode(t) // three enabled peers created at t0
	n.apply(fsm.CmdAddPeer, fsm.AddPeer{Name: "newest", PublicKey: key(60), Enabled: true, At: t0.Add(time.Hour)})
	h := startWith(t, n, false, func(c *Config) { c.PeerLimit = 3 })
	h.elect()
	poll(t, "takeover", func() bool { _, up, _ := h.dp.snapshot(); return up && h.vips.isHeld() })
	cfg, _, _ := h.dp.snapshot()
	if len(cfg.Peers) != 3 || slices.ContainsFunc(cfg.Peers, func(p dataplane.Peer) bool { return p.PublicKey == key(60) }) {
		t.Fatalf("peers on the interface: %+v", cfg.Peers)
	}
	// Disabling an old peer makes room for the newest.
	n.apply(fsm.CmdUpdatePeer, fsm.UpdatePeer{Name: "old", Enabled: new(bool), At: t0})
	h.loop.Wake()
	poll(t, "newest peer configured", func() bool {
		cfg, _, _ := h.dp.snapshot()
		return len(cfg.Peers) == 3 && slices.ContainsFunc(cfg.Peers, func(p dataplane.Peer) bool { return p.PublicKey == key(60) })
	})
	if n.handovers.Load() != 0 {
		t.Fatal("the leader handed over because of the peer limit")
	}
	if PeerLimit(dataplane.KindUserspace) != dataplane.MaxUserspacePeers || PeerLimit(dataplane.KindKernel) != 0 {
		t.Fatal("PeerLimit by kind")
	}
}

// leaseHarness is a leader whose loop renews the VIP lease every 10ms with
// a lifetime of 100ms.
func leaseHarness(t *testing.T) (*fakeNode, *harness) {
	n := newNode(t)
	h := startWith(t, n, false, func(c *Config) {
		c.LeaseRenew, c.LeaseLifetime = 10*time.Millisecond, 100*time.Millisecond
	})
	h.elect()
	poll(t, "takeover", func() bool { return h.vips.isHeld() })
	poll(t, "renewals", func() bool { return h.vips.renewed() >= 3 })
	return n, h
}

// stopsRenewing fails unless the renewals stop (at most one in flight when
// the fault began) for ten renewal periods.
func stopsRenewing(t *testing.T, h *harness) {
	t.Helper()
	before := h.vips.renewed()
	time.Sleep(100 * time.Millisecond) // an observation window: nothing may happen in it
	mid := h.vips.renewed()
	time.Sleep(100 * time.Millisecond)
	if after := h.vips.renewed(); after != mid || mid > before+1 {
		t.Fatalf("renewals went on: %d, %d, %d", before, mid, after)
	}
}

func TestLeaseStopsWhenRaftIsWedged(t *testing.T) {
	n, h := leaseHarness(t)
	// Raft still says leader, but its leader loop answers nothing.
	n.wedged.Store(true)
	stopsRenewing(t, h)
	// Nor does the loop claim the VIP again on the strength of IsLeader
	// alone: it gives up and hands over.
	poll(t, "step-down and handover", func() bool { return !h.vips.isHeld() && n.handovers.Load() > 0 })
}

func TestLeaseStopsWhenThePassIsStuck(t *testing.T) {
	_, h := leaseHarness(t)
	block := make(chan struct{})
	h.dp.mu.Lock()
	h.dp.block = block
	h.dp.mu.Unlock()
	// A state change makes the next pass apply a config; Set hangs.
	h.node.apply(fsm.CmdAddPeer, fsm.AddPeer{Name: "new", PublicKey: key(50), Enabled: true, At: t0})
	h.loop.Wake()
	poll(t, "the pass to hang", func() bool {
		s := h.loop.passStart.Load()
		return s != 0 && time.Since(time.Unix(0, s)) > 150*time.Millisecond
	})
	stopsRenewing(t, h)
	h.dp.mu.Lock()
	h.dp.block = nil
	h.dp.mu.Unlock()
	close(block)
	n := h.vips.renewed()
	poll(t, "renewals to resume", func() bool { return h.vips.renewed() > n+2 })
}

func TestLeaseStopsAtStepDown(t *testing.T) {
	n, h := leaseHarness(t)
	n.leader.Store(false)
	h.lead <- struct{}{}
	poll(t, "step-down", func() bool { return !h.vips.isHeld() })
	stopsRenewing(t, h)
}

// TestFollowerTakesAnInterfaceUpDownAgain: an interface brought up on a
// follower by someone else goes down again at the next pass.
func TestFollowerTakesAnInterfaceUpDownAgain(t *testing.T) {
	h := start(t, newNode(t), false)
	poll(t, "config applied", func() bool { cfg, _, _ := h.dp.snapshot(); return len(cfg.Peers) == 3 })
	h.dp.mu.Lock()
	h.dp.up = true // ip link set up, behind the loop's back
	h.dp.mu.Unlock()
	poll(t, "the interface down again", func() bool { _, up, _ := h.dp.snapshot(); return !up })
}

// deliveryVIPs is a fakeVIPs whose network delivers the VIPs only once
// delivered is set (a BGP route announced, a cloud API called).
type deliveryVIPs struct {
	*fakeVIPs
	delivered atomic.Bool
}

func (v *deliveryVIPs) Delivered([]netip.Prefix) bool { return v.delivered.Load() }

// A new leader greets the clients only once the VIPs are delivered to it:
// before, their answers would not reach it.
func TestGreetWaitsForDelivery(t *testing.T) {
	n := newNode(t)
	dv := &deliveryVIPs{fakeVIPs: &fakeVIPs{}}
	h := startWith(t, n, false, func(c *Config) { c.VIPs = dv })
	h.elect()
	poll(t, "takeover", func() bool { _, up, _ := h.dp.snapshot(); return up && dv.isHeld() })
	// Several lease renewals later, still without delivery: no handshakes.
	renewals := dv.renewed()
	poll(t, "three more renewals", func() bool { return dv.renewed() >= renewals+3 })
	if _, _, hs := h.dp.snapshot(); len(hs) != 0 {
		t.Fatalf("handshakes before the VIPs were delivered: %v", hs)
	}
	dv.delivered.Store(true)
	h.loop.Wake()
	poll(t, "greeting after delivery", func() bool { _, _, hs := h.dp.snapshot(); return len(hs) == 2 })
}
