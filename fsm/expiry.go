package fsm

import (
	"fmt"
	"time"
)

// Peer expiry. A peer may carry an expiry time (AddPeer.ExpiresAt,
// UpdatePeer.ExpiresAt). The leader proposes ExpirePeers, with its own
// time in At, for the peers whose expiry has passed; applying it disables
// them and marks them expired, so they leave every node's interface. An
// expired peer is enabled again only together with a new expiry, or with
// the zero time (never).

// checkExpiry refuses an expiry that is not after at (the write's time).
func checkExpiry(exp, at time.Time) error {
	if !exp.IsZero() && !exp.After(at) {
		return fmt.Errorf("%w: expires_at %s is not in the future", ErrInvalid, exp.UTC().Format(time.RFC3339))
	}
	return nil
}

// updateExpiry applies c's expiry change to p (a copy of the stored peer)
// and checks that an expired peer is enabled only with a new expiry.
func updateExpiry(p *Peer, c UpdatePeer) error {
	if c.ExpiresAt != nil {
		if err := checkExpiry(*c.ExpiresAt, c.At); err != nil {
			return err
		}
		p.ExpiresAt, p.Expired = *c.ExpiresAt, false
	}
	if c.Enabled != nil && *c.Enabled && p.Expired {
		return fmt.Errorf("%w: peer %q expired at %s: give a new expiry (or never) to enable it", ErrInvalid, p.Name, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// ExpirePeers disables and marks expired the named peers whose expiry is
// not after At (the leader's time). Others (unknown, already expired, or
// given a new expiry meanwhile) are left as they are.
type ExpirePeers struct {
	Names []string  `json:"names"`
	At    time.Time `json:"at"`
}

func (s *state) applyExpirePeers(c ExpirePeers) any {
	for _, name := range c.Names {
		old, ok := s.peers[name]
		if !ok || old.Expired || old.ExpiresAt.IsZero() || old.ExpiresAt.After(c.At) {
			continue
		}
		p := old.clone()
		p.Enabled, p.Expired, p.UpdatedAt = false, true, c.At
		s.replacePeer(old, p)
	}
	s.touch(c.At)
	return nil
}

// DuePeers returns the names of up to limit peers whose expiry is not
// after now and who are not marked expired yet.
func (f *FSM) DuePeers(now time.Time, limit int) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []string
	for _, p := range f.st.peers {
		if len(out) >= limit {
			break
		}
		if !p.Expired && !p.ExpiresAt.IsZero() && !p.ExpiresAt.After(now) {
			out = append(out, p.Name)
		}
	}
	return out
}
