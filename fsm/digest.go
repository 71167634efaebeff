package fsm

import (
	"crypto/sha256"
	"encoding/hex"
)

// digestCache remembers the digest of one state version.
type digestCache struct {
	gen    uint64
	index  uint64
	digest string
}

// Digest returns the hex SHA-256 of the state in its deterministic snapshot
// encoding (the bytes WriteSnapshot writes), and the applied index it
// describes. Two nodes holding the same applied state return the same
// digest. The digest is computed at most once per state version: repeated
// calls between two applied commands are cheap however large the registry.
func (f *FSM) Digest() (index uint64, digest string) {
	f.digestMu.Lock()
	defer f.digestMu.Unlock()
	f.mu.RLock()
	gen := f.gen
	if c := f.digestCache; c.digest != "" && c.gen == gen {
		f.mu.RUnlock()
		return c.index, c.digest
	}
	// Copy under the read lock, encode outside it: writers wait only for
	// the copy.
	sn := f.st.snapshot()
	f.mu.RUnlock()
	h := sha256.New()
	if _, err := sn.WriteTo(h); err != nil {
		// A hash never fails to write and the state always encodes;
		// should it happen, report no digest rather than a wrong one.
		return sn.meta.LastIndex, ""
	}
	c := digestCache{gen: gen, index: sn.meta.LastIndex, digest: hex.EncodeToString(h.Sum(nil))}
	f.digestCache = c
	return c.index, c.digest
}
