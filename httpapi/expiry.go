package httpapi

import (
	"fmt"
	"strings"
	"time"

	"github.com/raftguard/raftguard/fsm"
)

// parseExpiry reads expires_at: an RFC 3339 time, or "never" (the zero
// time). Whether it lies in the future is fsm's rule, checked against the
// write's time.
func parseExpiry(s string) (time.Time, error) {
	if strings.EqualFold(strings.TrimSpace(s), "never") {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: expires_at %q: want an RFC 3339 time (2026-12-31T23:59:00Z) or never", fsm.ErrInvalid, s)
	}
	return t.UTC(), nil
}
