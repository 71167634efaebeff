package fsm

import (
	"fmt"
	"time"
)

// MaxBulkPeers bounds one add-peers command (and so one Raft entry: a
// peer's body is a few hundred bytes).
const MaxBulkPeers = 1000

// AddPeers creates many peers in one entry, all or nothing: each is
// checked by AddPeer's rules, in order, against the state with the ones
// before it added; the first that fails undoes the others. A peer that
// exists with the same name and public key is left as it is (a retry).
type AddPeers struct {
	Peers []AddPeer `json:"peers"`
	At    time.Time `json:"at"`
}

// AddPeersResult is Apply's answer to a successful AddPeers, one result
// per peer in order.
type AddPeersResult struct {
	Peers []AddPeerResult
}

// BulkPeerError says which peer of an AddPeers failed; it wraps the
// rule's sentinel error.
type BulkPeerError struct {
	Index int
	Name  string
	Err   error
}

func (e *BulkPeerError) Error() string {
	return fmt.Sprintf("peer %d (%q): %v", e.Index+1, e.Name, e.Err)
}

func (e *BulkPeerError) Unwrap() error { return e.Err }

func (s *state) applyAddPeers(c AddPeers) any {
	res, err := s.addPeers(c, MaxBulkPeers)
	if err != nil {
		return err
	}
	return res
}

// addPeers applies c (of at most limit peers), undoing every peer it
// added when one fails.
func (s *state) addPeers(c AddPeers, limit int) (AddPeersResult, error) {
	if len(c.Peers) == 0 || len(c.Peers) > limit {
		return AddPeersResult{}, fmt.Errorf("%w: add %d to %d peers at once, not %d", ErrInvalid, 1, limit, len(c.Peers))
	}
	out := AddPeersResult{Peers: make([]AddPeerResult, 0, len(c.Peers))}
	var created []string
	for i, ap := range c.Peers {
		ap.At = c.At
		res := s.applyAddPeer(ap)
		if err, ok := res.(error); ok {
			s.undoPeers(created)
			return AddPeersResult{}, &BulkPeerError{Index: i, Name: ap.Name, Err: err}
		}
		r := res.(AddPeerResult)
		if r.Created {
			created = append(created, r.Peer.Name)
		}
		out.Peers = append(out.Peers, r)
	}
	return out, nil
}

func (s *state) undoPeers(names []string) {
	for i := len(names) - 1; i >= 0; i-- {
		if p, ok := s.peers[names[i]]; ok {
			s.unindexPeer(p)
		}
	}
}

// MaxCheckPeers bounds CheckAddPeers.
const MaxCheckPeers = 100_000

// CheckAddPeers answers what applying c would answer, without changing
// the state (a dry run on the local replica). It takes up to MaxCheckPeers
// peers: a whole import is checked at once, then applied in entries of
// MaxBulkPeers.
func (f *FSM) CheckAddPeers(c AddPeers) (AddPeersResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.st.lastTime
	res, err := f.st.addPeers(c, MaxCheckPeers)
	if err == nil {
		var created []string
		for _, r := range res.Peers {
			if r.Created {
				created = append(created, r.Peer.Name)
			}
		}
		f.st.undoPeers(created)
	}
	f.st.lastTime = last
	return res, err
}
