package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/pki"
)

// Web console sessions.
//
// A login with an admin token (POST /v1/session) creates a session: a
// random secret that the browser keeps in an HttpOnly, Secure,
// SameSite=Strict cookie, and whose hash is recorded in the replicated state
// (fsm.CreateSession). Every node can therefore check the cookie against
// its own replica, so a session survives a leader change and works on any
// node; a logout (DELETE /v1/session) deletes the record, which ends the
// session on every node. A session also ends at its expiry and when the
// admin token it was opened with is revoked.
//
// A request authenticated by the cookie that is not a GET or HEAD must carry
// the session's CSRF token in HeaderCSRF. The CSRF token is derived from the
// session secret (a hash with its own prefix), so it is bound to the session,
// any node can check it without storing it, and a page of another site,
// which can neither read the cookie nor the console's answers, cannot know
// it.
const (
	// SessionCookie is the name of the console's session cookie. The
	// __Host- prefix makes the browser refuse it unless it is Secure, has
	// Path=/ and no Domain: no other host can set or shadow it.
	SessionCookie = "__Host-raftguard_session"
	// HeaderCSRF carries the session's CSRF token on writes made with the
	// session cookie.
	HeaderCSRF = "X-CSRF-Token"
	// DefaultSessionTTL is how long a console session lasts.
	DefaultSessionTTL = 12 * time.Hour
)

// LoginRequest is the body of POST /v1/session.
type LoginRequest struct {
	Token string `json:"token"`
}

// SessionView is the answer of POST and GET /v1/session: never the session
// secret, which only the cookie holds.
type SessionView struct {
	CSRFToken string    `json:"csrf_token"`
	TokenID   string    `json:"token_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	NodeID    string    `json:"node_id"`
}

// sessionHash is what the state keeps of a session secret.
func sessionHash(secret string) string {
	sum := sha256.Sum256([]byte("raftguard session\n" + secret))
	return hex.EncodeToString(sum[:])
}

// csrfToken is the CSRF token of the session with this secret.
func csrfToken(secret string) string {
	sum := sha256.Sum256([]byte("raftguard csrf\n" + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sessionSecret returns the session cookie's value, if the request has one.
func sessionSecret(r *http.Request) (string, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return "", false
	}
	return c.Value, true
}

var (
	errSessionInvalid = errorf(http.StatusUnauthorized, "session_expired", "the console session has ended (logged out, expired, or its admin token was revoked); log in again")
	errCSRF           = errorf(http.StatusForbidden, "csrf_required", "a change made with the session cookie needs the session's CSRF token in the "+HeaderCSRF+" header")
	errNoSession      = errorf(http.StatusUnauthorized, "no_session", "this request carries no console session cookie; log in with POST /v1/session")
	errLogoutNoCookie = errorf(http.StatusBadRequest, "no_session", "this request carries no console session cookie: there is no session to end")
)

// authenticateSession checks a session cookie and, for a request that may
// change something, its CSRF token.
func (s *Server) authenticateSession(r *http.Request, secret string) error {
	// A login or logout this node forwarded must be visible here before
	// the next request of the same browser is checked.
	s.waitApplied(r.Context(), s.readFloor.Load())
	ses, ok := s.b.State().Session(sessionHash(secret))
	if !ok || !time.Now().Before(ses.ExpiresAt) {
		// As for tokens, a valid session is served from a locked-out
		// address; an unknown one is refused without a further count.
		src := sourceIP(r)
		if wait := s.limit.blockedFor(src); wait > 0 {
			s.noteRefusal(src, "authenticate", r.URL.Path, "locked_out")
			return lockedOut(wait, "too many failed authentications from this address")
		}
		if s.catchingUp() {
			return errorf(http.StatusServiceUnavailable, "not_ready", "this node is still loading the cluster's state; retry shortly")
		}
		// A node forwarding a request checked the session itself; a
		// leader that has not applied it yet must not count the
		// forwarding node's address.
		if !forwardedByNode(r) {
			s.authFailed(r, src, "unknown, ended or expired console session")
		}
		return errSessionInvalid
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		got := r.Header.Get(HeaderCSRF)
		if subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(secret))) != 1 {
			s.log.Warn("refused a console write without its CSRF token", "source", sourceIP(r), "method", r.Method, "path", r.URL.Path)
			return errCSRF
		}
	}
	return nil
}

// prepareLogin checks a login's token on the node that received it, before
// it is forwarded, so that a wrong token counts against the caller's
// address in the same limiter as a wrong bearer token.
func (s *Server) prepareLogin(r *request) error {
	if forwardedByNode(r.Request) {
		return nil // the forwarding node checked it
	}
	if err := s.requireCommand(fsm.CmdCreateSession)(r); err != nil {
		return err
	}
	var req LoginRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	// The rules of authenticate: a valid token is accepted from a
	// locked-out address, a wrong one is refused there without a count.
	if _, ok := s.adminToken(req.Token); ok {
		return nil
	}
	src := sourceIP(r.Request)
	if wait := s.limit.blockedFor(src); wait > 0 {
		s.noteRefusal(src, "authenticate", r.URL.Path, "locked_out")
		return lockedOut(wait, "too many failed authentications from this address")
	}
	if s.catchingUp() {
		return errorf(http.StatusServiceUnavailable, "not_ready", "this node is still loading the cluster's state; retry shortly")
	}
	s.authFailed(r.Request, src, "console login with an unknown or revoked admin token")
	return errorf(http.StatusUnauthorized, "unauthorized", "invalid admin token")
}

// sessionTokenID is the admin token id of the request's session ("" when
// it has none), for the audit log.
func (s *Server) sessionTokenID(r *http.Request) string {
	secret, ok := sessionSecret(r)
	if !ok {
		return ""
	}
	ses, ok := s.b.State().Session(sessionHash(secret))
	if !ok {
		return ""
	}
	return ses.TokenID
}

// adminToken returns the admin token whose secret is tok.
func (s *Server) adminToken(tok string) (fsm.AdminToken, bool) {
	if tok == "" || len(tok) > 256 {
		return fsm.AdminToken{}, false
	}
	h := pki.HashToken(tok)
	t, ok := s.b.State().AdminTokenByHash(h)
	if !ok || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) != 1 {
		return fsm.AdminToken{}, false
	}
	return t, true
}

// login runs on the leader: it records a new session and sets its cookie.
func (s *Server) login(w http.ResponseWriter, r *request) error {
	var req LoginRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	t, ok := s.adminToken(req.Token)
	if !ok {
		return errorf(http.StatusUnauthorized, "unauthorized", "invalid admin token")
	}
	if r.who != nil {
		r.who.TokenID = t.ID // the audit record names who logged in
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	now := time.Now().UTC()
	ttl := s.cfg.SessionTTL
	ses := fsm.Session{Hash: sessionHash(secret), TokenID: t.ID, ExpiresAt: now.Add(ttl)}
	if _, err := s.apply(w, fsm.CmdCreateSession, fsm.CreateSession{Session: ses, At: now}); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    secret,
		Path:     "/",
		Expires:  ses.ExpiresAt,
		MaxAge:   int(ttl / time.Second),
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteStrictMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	s.log.Info("console login", "token_id", t.ID, "source", sourceIP(r.Request))
	writeJSON(w, http.StatusCreated, SessionView{CSRFToken: csrfToken(secret), TokenID: t.ID, CreatedAt: now, ExpiresAt: ses.ExpiresAt, NodeID: s.b.NodeID()})
	return nil
}

// getSession describes the caller's session and hands the page its CSRF
// token again (after a reload). Without a cookie it answers 401 without
// counting a failure: the console asks on every load.
func (s *Server) getSession(w http.ResponseWriter, r *request) error {
	secret, ok := sessionSecret(r.Request)
	if !ok {
		return errNoSession
	}
	if err := s.authenticateSession(r.Request, secret); err != nil {
		return err
	}
	ses, ok := s.b.State().Session(sessionHash(secret))
	if !ok {
		return errSessionInvalid
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, SessionView{CSRFToken: csrfToken(secret), TokenID: ses.TokenID, CreatedAt: ses.CreatedAt, ExpiresAt: ses.ExpiresAt, NodeID: s.b.NodeID()})
	return nil
}

// logout runs on the leader: it deletes the caller's session, which ends it
// on every node, and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *request) error {
	secret, ok := sessionSecret(r.Request)
	if !ok {
		return errLogoutNoCookie
	}
	if _, err := s.apply(w, fsm.CmdDeleteSession, fsm.DeleteSession{Hash: sessionHash(secret), At: time.Now().UTC()}); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}
