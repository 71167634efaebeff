package agent

import (
	"errors"
	"fmt"
	"testing"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/raftnode"
)

// TestRaftErrorKeepsTheChain: raftnode's sentinels become the API's, and
// the original errors stay in the chain.
func TestRaftErrorKeepsTheChain(t *testing.T) {
	for _, c := range []struct{ in, want error }{
		{raftnode.ErrLeadershipLost, httpapi.ErrLeadershipLost},
		{raftnode.ErrNotLeader, httpapi.ErrNotLeader},
		{raftnode.ErrTimeout, httpapi.ErrTimeout},
		{raftnode.ErrShutdown, httpapi.ErrShutdown},
		{raftnode.ErrUnknownServer, fsm.ErrNotFound},
	} {
		err := raftError(fmt.Errorf("apply: %w", c.in))
		if !errors.Is(err, c.want) || !errors.Is(err, c.in) {
			t.Errorf("%v became %v", c.in, err)
		}
	}
	if errors.Is(raftError(raftnode.ErrNotLeader), httpapi.ErrLeadershipLost) {
		t.Error("not leader became a lost leadership")
	}
	if raftError(nil) != nil {
		t.Error("nil became an error")
	}
}
