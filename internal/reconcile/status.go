package reconcile

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/raftguard/raftguard/fsm"
)

// statusEvery is how often the leader records traffic totals that moved
// (endpoint changes and new handshakes are recorded within a second).
const statusEvery = 5 * time.Second

// counters tracks, on the leader, the traffic totals over all leaders:
// the totals recorded when this node took over (or when it first saw a
// peer) plus what its own interface counted since.
type counters struct {
	mu       sync.Mutex           // guards the fields below
	last     map[string][2]uint64 // interface counters last seen, by public key
	total    map[string][2]uint64 // totals over all leaders, by public key
	lastSent time.Time            // when traffic totals were last recorded
}

// baseline starts a leadership: what the interface counted before (as an
// earlier leader, already recorded then) is not counted again.
func (l *Loop) statusBaseline(dp Dataplane) {
	last := map[string][2]uint64{}
	if stats, err := dp.Stats(); err == nil {
		for _, s := range stats {
			last[s.PublicKey] = [2]uint64{s.RxBytes, s.TxBytes}
		}
	}
	l.counters.mu.Lock()
	l.counters.last, l.counters.total, l.counters.lastSent = last, map[string][2]uint64{}, time.Time{}
	l.counters.mu.Unlock()
}

// syncStatus records, in batches, the peers whose endpoint changed or who
// made a newer handshake, and (every statusEvery) those whose traffic
// totals moved.
func (l *Loop) syncStatus(dp Dataplane) error {
	stats, err := dp.Stats()
	if err != nil {
		return err
	}
	st := l.cfg.Node.State()
	c := &l.counters
	c.mu.Lock()
	if c.last == nil {
		c.last, c.total = map[string][2]uint64{}, map[string][2]uint64{}
	}
	sendTraffic := time.Since(c.lastSent) >= statusEvery
	var updates []fsm.PeerStatusUpdate
	for _, s := range stats {
		p, ok := st.PeerByKey(s.PublicKey)
		if !ok {
			continue
		}
		cur := [2]uint64{s.RxBytes, s.TxBytes}
		prev := c.last[s.PublicKey] // zero for a peer new on the interface
		tot, ok := c.total[s.PublicKey]
		if !ok {
			tot = [2]uint64{p.RxBytes, p.TxBytes}
		}
		for i := range cur {
			if cur[i] >= prev[i] {
				tot[i] += cur[i] - prev[i]
			} else {
				tot[i] += cur[i] // the interface's counters started again
			}
		}
		tot[0], tot[1] = max(tot[0], p.RxBytes), max(tot[1], p.TxBytes)
		c.last[s.PublicKey], c.total[s.PublicKey] = cur, tot

		u := fsm.PeerStatusUpdate{Name: p.Name}
		changed := false
		if s.Endpoint.IsValid() && s.Endpoint.String() != p.Endpoint {
			u.Endpoint, changed = s.Endpoint.String(), true
		}
		if hs := s.LastHandshake.UTC().Truncate(time.Second); hs.After(p.LastHandshake) {
			u.LastHandshake, changed = hs, true
		}
		if sendTraffic && (tot[0] != p.RxBytes || tot[1] != p.TxBytes) {
			changed = true
		}
		if changed {
			u.RxBytes, u.TxBytes = tot[0], tot[1]
			updates = append(updates, u)
		}
	}
	if sendTraffic {
		c.lastSent = time.Now()
	}
	c.mu.Unlock()
	if len(updates) == 0 {
		return nil
	}
	slices.SortFunc(updates, func(a, b fsm.PeerStatusUpdate) int { return cmp.Compare(a.Name, b.Name) })
	for len(updates) > 0 {
		n := min(len(updates), maxEndpointBatch)
		if _, err := l.cfg.Node.Propose(fsm.CmdSetPeerStatus, fsm.SetPeerStatus{Updates: updates[:n], At: time.Now().UTC()}); err != nil {
			return err
		}
		updates = updates[n:]
	}
	return nil
}

// peerStatusRecorded reports whether the cluster records full peer status
// (SetPeerStatus); before, the leader records endpoints alone.
func (l *Loop) peerStatusRecorded() bool {
	return l.cfg.Node.State().ClusterVersion() >= fsm.CommandSince(fsm.CmdSetPeerStatus)
}
