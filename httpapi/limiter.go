package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/raftguard/raftguard/fsm"
)

// Failed authentications: each source address may fail failLimit times
// within failWindow; beyond that, further failures answer 429 until the
// oldest of them is failWindow old. A valid admin token is still served
// (see authenticate); a join from a locked-out address is refused before
// its body is read.
const (
	failLimit  = 20
	failWindow = time.Minute
)

// failLimiter counts failed attempts per source address in a sliding window.
type failLimiter struct {
	max    int
	window time.Duration
	mu     sync.Mutex // guards fails
	fails  map[string][]time.Time
}

func newFailLimiter(max int, window time.Duration) *failLimiter {
	return &failLimiter{max: max, window: window, fails: map[string][]time.Time{}}
}

func (l *failLimiter) prune(src string, now time.Time) []time.Time {
	ts := l.fails[src]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, src)
	} else {
		l.fails[src] = ts
	}
	return ts
}

// fail records a failure from src. It returns how long src is now locked
// out: 0 unless this failure reached the limit.
func (l *failLimiter) fail(src string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	ts := l.prune(src, now)
	if len(l.fails) > 10000 { // bound memory under a spray of sources
		clear(l.fails)
	}
	ts = append(ts, now)
	l.fails[src] = ts
	if len(ts) >= l.max {
		return l.wait(ts, now)
	}
	return 0
}

// blockedFor returns how long src stays locked out (0: it is not).
func (l *failLimiter) blockedFor(src string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	ts := l.prune(src, now)
	if len(ts) < l.max {
		return 0
	}
	return l.wait(ts, now)
}

// wait is the time until fewer than max failures of ts lie in the window:
// until the failure max places from the end leaves it.
func (l *failLimiter) wait(ts []time.Time, now time.Time) time.Duration {
	return ts[len(ts)-l.max].Add(l.window).Sub(now)
}

// retryAfterError is an API error with the time the caller should wait.
type retryAfterError struct {
	*apiError
	after time.Duration
}

func (e *retryAfterError) Unwrap() error { return e.apiError }

// lockedOut is the 429 answer to a locked-out source, with the true wait.
func lockedOut(wait time.Duration, what string) error {
	return &retryAfterError{
		apiError: errorf(http.StatusTooManyRequests, "too_many_failures", "%s; retry in %d s", what, retryAfterSeconds(wait)),
		after:    wait,
	}
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// bearerToken takes the token out of an Authorization header. The scheme is
// case-insensitive (RFC 9110, section 11.1).
func bearerToken(auth string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(auth), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// authFailReason says why a request failed authentication, without the
// token.
func authFailReason(auth string, isBearer bool) string {
	switch {
	case auth == "":
		return "no Authorization header"
	case !isBearer:
		return "not a Bearer token"
	}
	return "unknown or revoked token"
}

// authFailed counts a failed authentication from src and logs it (never the
// token); the failure that locks the address out is logged with the wait.
func (s *Server) authFailed(r *http.Request, src, reason string) {
	wait := s.limit.fail(src)
	s.log.Warn("authentication failed", "source", src, "method", r.Method, "path", r.URL.Path, "reason", reason)
	if wait > 0 {
		s.log.Warn("address locked out after repeated failed authentications; further failures answer 429",
			"source", src, "failures", s.limit.max, "window", s.limit.window, "retry_after", fmt.Sprintf("%ds", retryAfterSeconds(wait)))
	}
	s.noteRefusal(src, "authenticate", r.URL.Path, "unauthorized")
}

// joinRefused counts a join refused for the identity it asked for (a
// conflict with a member's node id or address), and returns err.
func (s *Server) joinRefused(r *request, nodeID string, err error) error {
	if !errors.Is(err, fsm.ErrNodeIDInUse) && !errors.Is(err, fsm.ErrNodeAddressInUse) {
		return err
	}
	s.log.Warn("join refused", "source", auditSource(r.Request), "node", nodeID, "err", err)
	s.noteRefusal(auditSource(r.Request), "join", nodeID, toAPIError(err).Code)
	return err
}
