package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

func sessionHash(i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "secret-%d", i))
	return hex.EncodeToString(sum[:])
}

func TestSessions(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	h.mustOK(CmdAddAdminToken, AddAdminToken{Token: AdminToken{ID: "ops", Hash: sessionHash(900)}, At: t0})
	create := func(i int, tok string, at time.Time, ttl time.Duration) any {
		return h.apply(CmdCreateSession, CreateSession{Session: Session{Hash: sessionHash(i), TokenID: tok, ExpiresAt: at.Add(ttl)}, At: at})
	}
	if err, _ := create(1, "root", t0, time.Hour).(error); err != nil {
		t.Fatal(err)
	}
	ses, ok := h.f.Session(sessionHash(1))
	if !ok || ses.TokenID != "root" || !ses.CreatedAt.Equal(t0) || !ses.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("session %+v %v", ses, ok)
	}
	for name, res := range map[string]any{
		"duplicate":     create(1, "root", t0, time.Hour),
		"unknown token": create(2, "nobody", t0, time.Hour),
		"no lifetime":   create(3, "root", t0, 0),
		"bad hash":      h.apply(CmdCreateSession, CreateSession{Session: Session{Hash: "secret", TokenID: "root", ExpiresAt: t0.Add(time.Hour)}, At: t0}),
	} {
		if _, isErr := res.(error); !isErr {
			t.Errorf("%s: accepted", name)
		}
	}
	// A revoked token ends its sessions at once.
	if err, _ := create(4, "ops", t0, time.Hour).(error); err != nil {
		t.Fatal(err)
	}
	h.mustOK(CmdRevokeAdminToken, RevokeAdminToken{ID: "ops", At: t0})
	if _, ok := h.f.Session(sessionHash(4)); ok {
		t.Fatal("a session of a revoked token is still valid")
	}
	// Logout, twice.
	h.mustOK(CmdDeleteSession, DeleteSession{Hash: sessionHash(1), At: t0})
	h.mustOK(CmdDeleteSession, DeleteSession{Hash: sessionHash(1), At: t0})
	if _, ok := h.f.Session(sessionHash(1)); ok {
		t.Fatal("a deleted session is still valid")
	}
	// Expired sessions are pruned by the next session command.
	create(5, "root", t0, time.Minute)
	create(6, "root", t0.Add(2*time.Minute), time.Hour)
	if _, ok := h.f.Session(sessionHash(5)); ok || h.f.SessionCount() != 1 {
		t.Fatalf("expired session kept; %d sessions", h.f.SessionCount())
	}
	// Snapshots carry them.
	other := newHarness(t, "10.99.0.0/24", "")
	if err := other.f.Restore(io.NopCloser(bytes.NewReader(h.snapshotBytes()))); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.f.Session(sessionHash(6)); !ok {
		t.Fatal("restore lost a session")
	}
	if !bytes.Equal(other.snapshotBytes(), h.snapshotBytes()) {
		t.Fatal("snapshot differs after a restore")
	}
}

func TestSessionsBounded(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	for i := range MaxSessions + 5 {
		at := t0.Add(time.Duration(i) * time.Second)
		h.mustOK(CmdCreateSession, CreateSession{Session: Session{Hash: sessionHash(i), TokenID: "root", ExpiresAt: at.Add(24 * time.Hour)}, At: at})
	}
	if n := h.f.SessionCount(); n != MaxSessions {
		t.Fatalf("%d sessions", n)
	}
	if _, ok := h.f.Session(sessionHash(4)); ok {
		t.Fatal("the oldest sessions were kept")
	}
	if _, ok := h.f.Session(sessionHash(MaxSessions + 4)); !ok {
		t.Fatal("the newest session was dropped")
	}
}

func TestSessionsNeedProtocol3(t *testing.T) {
	for _, c := range []CommandType{CmdCreateSession, CmdDeleteSession} {
		if err := CheckProposable(c, nil, 2); !errors.Is(err, ErrUpgradeRequired) {
			t.Errorf("%s at cluster version 2: %v", c, err)
		}
		if err := CheckProposable(c, nil, 3); err != nil {
			t.Errorf("%s at cluster version 3: %v", c, err)
		}
	}
}
