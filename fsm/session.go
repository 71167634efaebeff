package fsm

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxSessions bounds the console sessions the state keeps. Creating one
// more drops the oldest.
const MaxSessions = 1000

// Session is a web console session: created by a login with an admin token,
// ended by a logout, by its expiry, or by the revocation of that token. Only
// the hash of the session secret is kept (the browser holds the secret in
// its cookie), so the replicated state, a snapshot or a backup cannot be
// used to take over a session.
type Session struct {
	// Hash is the hex SHA-256 of the session secret.
	Hash string `json:"hash"`
	// TokenID is the admin token the session was opened with.
	TokenID   string    `json:"token_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateSession records a console session (protocol 3). The proposer
// checked the admin token; Apply checks that it still exists.
type CreateSession struct {
	Session Session   `json:"session"`
	At      time.Time `json:"at"`
}

// DeleteSession ends a console session (protocol 3). Deleting a session
// that does not exist (it expired, or a retried logout) succeeds.
type DeleteSession struct {
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
}

// validSession checks a session's fields.
func validSession(c Session) error {
	if err := ValidateTokenHash(c.Hash); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	if err := ValidateName(c.TokenID); err != nil {
		return fmt.Errorf("session token id: %w", err)
	}
	if !c.ExpiresAt.After(c.CreatedAt) {
		return fmt.Errorf("%w: session expires before it starts", ErrInvalid)
	}
	return nil
}

func (s *state) applyCreateSession(c CreateSession) any {
	ses := c.Session
	ses.CreatedAt = c.At
	if err := validSession(ses); err != nil {
		return err
	}
	if _, ok := s.tokens[ses.TokenID]; !ok {
		return fmt.Errorf("%w: admin token %q", ErrNotFound, ses.TokenID)
	}
	if _, ok := s.sessions[ses.Hash]; ok {
		return fmt.Errorf("%w: session exists", ErrDuplicateKey)
	}
	s.pruneSessions(c.At)
	if len(s.sessions) >= MaxSessions {
		oldest := slices.MinFunc(valuesByKey(s.sessions), func(a, b Session) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(a.Hash, b.Hash)
		})
		delete(s.sessions, oldest.Hash)
	}
	s.sessions[ses.Hash] = ses
	s.touch(c.At)
	return nil
}

func (s *state) applyDeleteSession(c DeleteSession) any {
	delete(s.sessions, c.Hash)
	s.pruneSessions(c.At)
	s.touch(c.At)
	return nil
}

// pruneSessions drops the sessions that have expired at now, and those whose
// admin token was revoked.
func (s *state) pruneSessions(now time.Time) {
	for h, ses := range s.sessions {
		if _, ok := s.tokens[ses.TokenID]; !ok || !ses.ExpiresAt.After(now) {
			delete(s.sessions, h)
		}
	}
}

// Session returns the console session whose secret hashes to hash, if it
// exists and its admin token has not been revoked. The caller checks the
// expiry against its own clock.
func (f *FSM) Session(hash string) (Session, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ses, ok := f.st.sessions[hash]
	if !ok {
		return Session{}, false
	}
	if _, ok := f.st.tokens[ses.TokenID]; !ok {
		return Session{}, false
	}
	return ses, true
}

// SessionCount is the number of console sessions the state holds (expired
// ones included until the next session command prunes them).
func (f *FSM) SessionCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.sessions)
}

// restoreSessions loads the sessions of a snapshot.
func (s *state) restoreSessions(in []Session) error {
	for _, ses := range in {
		if err := validSession(ses); err != nil {
			return fmt.Errorf("snapshot %w", err)
		}
		if _, ok := s.sessions[ses.Hash]; ok {
			return fmt.Errorf("snapshot session: %w: twice", ErrDuplicateKey)
		}
		s.sessions[ses.Hash] = ses
	}
	return nil
}
