package agent

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/raftnode"
)

// LeaderChanges counts the new leaders this node has observed.
func (a *Agent) LeaderChanges() uint64 { return a.raft.LeaderChanges() }

// RestoreSnapshot replaces the replicated state with a snapshot through
// Raft: the leader installs it and followers receive it as a snapshot
// install. The caller has validated the snapshot: a restore that fails in
// the state machine stops raft.
func (a *Agent) RestoreSnapshot(r io.Reader, size int64) error {
	return raftError(a.raft.Restore(r, size, time.Minute))
}

// raftError maps raftnode's sentinels onto the API's: the one translation
// between the two. It wraps with %w, so the whole chain (raftnode's
// sentinel and raft's own error) stays visible.
func raftError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raftnode.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", httpapi.ErrLeadershipLost, err)
	case errors.Is(err, raftnode.ErrNotLeader):
		return fmt.Errorf("%w: %w", httpapi.ErrNotLeader, err)
	case errors.Is(err, raftnode.ErrTimeout):
		return fmt.Errorf("%w: %w", httpapi.ErrTimeout, err)
	case errors.Is(err, raftnode.ErrShutdown):
		return fmt.Errorf("%w: %w", httpapi.ErrShutdown, err)
	case errors.Is(err, raftnode.ErrUnknownServer):
		return fmt.Errorf("%w: %w", fsm.ErrNotFound, err)
	}
	return err
}
