package fsm

import (
	"fmt"
	"io"
	"net/netip"
)

// ValidateSnapshot reads a whole snapshot and reports whether it may be
// restored from outside the cluster (a backup file sent to the API): it
// must pass every check Restore makes and every rule a live write must
// pass, so a restore cannot bring in a value the API would refuse. It
// changes nothing.
//
// Restore itself (Raft installing its own snapshots, a node loading one at
// start) checks only what keeps the state consistent: its snapshots were
// built from commands that were checked when they were proposed, and a node
// must load what an earlier version wrote.
func ValidateSnapshot(r io.Reader) error {
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	return st.checkAdmissible()
}

// checkAdmissible applies the rules of the live paths to a whole state.
func (s *state) checkAdmissible() error {
	if !s.initialized {
		return fmt.Errorf("%w: the snapshot holds no initialized cluster", ErrInvalid)
	}
	if err := validateClientFields(&s.settings); err != nil {
		return fmt.Errorf("snapshot settings: %w", err)
	}
	if err := ValidateServerKeyPair(s.settings.PrivateKey, s.settings.PublicKey); err != nil {
		return fmt.Errorf("snapshot settings: %w", err)
	}
	if err := ValidateCAPair(s.cluster.CACertPEM, s.cluster.CAKeyPEM); err != nil {
		return fmt.Errorf("snapshot cluster CA: %w", err)
	}
	if err := ValidateTokenText(s.cluster.JoinToken); err != nil {
		return fmt.Errorf("snapshot join token: %w", err)
	}
	raftAddrs, apiAddrs := map[string]string{}, map[string]string{}
	for _, n := range valuesByKey(s.nodes) {
		if err := ValidateName(n.ID); err != nil {
			return fmt.Errorf("snapshot node id: %w", err)
		}
		for _, a := range []string{n.RaftAddr, n.APIAddr} {
			if err := ValidateNodeAddr(a); err != nil {
				return fmt.Errorf("snapshot node %q: %w", n.ID, err)
			}
		}
		if o, ok := raftAddrs[n.RaftAddr]; ok {
			return fmt.Errorf("snapshot nodes %q and %q: %w: the same Raft address", o, n.ID, ErrAddressInUse)
		}
		if o, ok := apiAddrs[n.APIAddr]; ok {
			return fmt.Errorf("snapshot nodes %q and %q: %w: the same API address", o, n.ID, ErrAddressInUse)
		}
		raftAddrs[n.RaftAddr], apiAddrs[n.APIAddr] = n.ID, n.ID
	}
	for _, t := range valuesByKey(s.tokens) {
		if err := ValidateName(t.ID); err != nil {
			return fmt.Errorf("snapshot admin token id: %w", err)
		}
		if err := ValidateLabel(t.Name); err != nil {
			return fmt.Errorf("snapshot admin token %q name: %w", t.ID, err)
		}
		if err := ValidateTokenHash(t.Hash); err != nil {
			return fmt.Errorf("snapshot admin token %q: %w", t.ID, err)
		}
	}
	rc := s.routeContext()
	for _, p := range valuesByKey(s.peers) {
		if err := ValidatePeerRoutes(rc, p.AllowedIPs); err != nil {
			return fmt.Errorf("snapshot peer %q: %w", p.Name, err)
		}
		if p.Endpoint != "" {
			if _, err := netip.ParseAddrPort(p.Endpoint); err != nil {
				return fmt.Errorf("snapshot peer %q: %w: endpoint is not address:port", p.Name, ErrInvalid)
			}
		}
	}
	return nil
}

// ValidateLabel checks a free-text label (an admin token's name): at most
// 128 bytes, no control characters.
func ValidateLabel(s string) error {
	if len(s) > 128 {
		return fmt.Errorf("%w: %d bytes, at most 128", ErrInvalid, len(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return fmt.Errorf("%w: control or invalid characters are not allowed", ErrInvalid)
		}
	}
	return nil
}
