package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/raftguard/raftguard/fsm"
)

// TestErrorStatuses: every sentinel a backend returns reaches the client
// with its own status and code, also when wrapped.
func TestErrorStatuses(t *testing.T) {
	base := errors.New("raft: some cause")
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{ErrNotLeader, http.StatusServiceUnavailable, "no_leader"},
		{ErrLeadershipLost, http.StatusServiceUnavailable, "leadership_lost"},
		{ErrTimeout, http.StatusServiceUnavailable, "timeout"},
		{ErrShutdown, http.StatusServiceUnavailable, "shutting_down"},
		{fsm.ErrUpgradeRequired, http.StatusConflict, "upgrade_required"},
		{fsm.ErrNotFound, http.StatusNotFound, "not_found"},
	} {
		wrapped := fmt.Errorf("apply: %w: %w", c.err, base)
		ae := toAPIError(wrapped)
		if ae.Status != c.status || ae.Code != c.code {
			t.Errorf("%v: %d %s, want %d %s", c.err, ae.Status, ae.Code, c.status, c.code)
		}
	}
	if !errors.Is(ErrLeadershipLost, ErrNotLeader) {
		t.Error("a lost leadership is not retried on the new leader")
	}
}
