package reconcile

import (
	"testing"
	"time"

	"github.com/raftguard/raftguard/dataplane"
	"github.com/raftguard/raftguard/fsm"
)

func setStats(dp *fakeDP, rx, tx uint64, hs time.Time) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	dp.stats = []dataplane.PeerStats{{PublicKey: key(0), RxBytes: rx, TxBytes: tx, LastHandshake: hs}}
}

func syncNow(t *testing.T, l *Loop, dp *fakeDP) fsm.Peer {
	t.Helper()
	l.counters.mu.Lock()
	l.counters.lastSent = time.Time{} // record the traffic totals now
	l.counters.mu.Unlock()
	if err := l.syncStatus(dp); err != nil {
		t.Fatal(err)
	}
	p, _ := l.cfg.Node.State().Peer("old")
	return p
}

// TestStatusTotalsOverLeaders: each leader adds what its own interface
// counted during its leadership to the recorded totals; counts from an
// earlier leadership, and a restarted interface's, are not counted twice;
// the recorded handshake never goes backwards.
func TestStatusTotalsOverLeaders(t *testing.T) {
	n := newNode(t)
	n.apply(fsm.CmdSetClusterVersion, fsm.SetClusterVersion{Version: fsm.ProtocolVersion, At: t0})
	hs := t0.Add(3 * time.Hour)

	// Leader 1's interface had counted 1000/2000 in an earlier
	// leadership (recorded then); it counts 500/600 more.
	l1, dp1 := New(Config{Node: n}), &fakeDP{}
	if !l1.peerStatusRecorded() {
		t.Fatal("cluster version does not allow set-peer-status")
	}
	setStats(dp1, 1000, 2000, time.Time{})
	l1.statusBaseline(dp1)
	setStats(dp1, 1500, 2600, hs)
	if p := syncNow(t, l1, dp1); p.RxBytes != 500 || p.TxBytes != 600 || !p.LastHandshake.Equal(hs) {
		t.Fatalf("after leader 1: rx %d tx %d handshake %v", p.RxBytes, p.TxBytes, p.LastHandshake)
	}

	// Leader 2 starts from zero and adds on top.
	l2, dp2 := New(Config{Node: n}), &fakeDP{}
	setStats(dp2, 0, 0, time.Time{})
	l2.statusBaseline(dp2)
	setStats(dp2, 100, 50, hs.Add(-time.Hour)) // an older handshake than recorded
	if p := syncNow(t, l2, dp2); p.RxBytes != 600 || p.TxBytes != 650 || !p.LastHandshake.Equal(hs) {
		t.Fatalf("after leader 2: rx %d tx %d handshake %v", p.RxBytes, p.TxBytes, p.LastHandshake)
	}
	// Its interface was recreated: counters start again from zero.
	setStats(dp2, 30, 20, hs.Add(time.Minute))
	if p := syncNow(t, l2, dp2); p.RxBytes != 630 || p.TxBytes != 670 || !p.LastHandshake.Equal(hs.Add(time.Minute)) {
		t.Fatalf("after a counter reset: rx %d tx %d handshake %v", p.RxBytes, p.TxBytes, p.LastHandshake)
	}
	// Nothing moved: nothing proposed.
	before := n.index.Load()
	syncNow(t, l2, dp2)
	if n.index.Load() != before {
		t.Fatal("an unchanged status was proposed again")
	}
}
