package agent

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftguard/raftguard/httpapi"
)

// countLeaderChanges counts new leaders in a raft observer's filter, which
// raft calls synchronously; the filter passes nothing on, so the observer
// needs no channel.
func (a *Agent) countLeaderChanges() {
	a.raft.Raft().RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
			a.leaderChanges.Add(1)
		}
		return false
	}))
}

// LeaderChanges counts the new leaders this node has observed.
func (a *Agent) LeaderChanges() uint64 { return a.leaderChanges.Load() }

// RestoreSnapshot replaces the replicated state with a snapshot through
// Raft: the leader installs it and followers receive it as a snapshot
// install. The caller has validated the snapshot: a restore that fails in
// the state machine stops raft.
func (a *Agent) RestoreSnapshot(r io.Reader, size int64) error {
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size}
	err := a.raft.Raft().Restore(meta, r, time.Minute)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: restore: %v", httpapi.ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: restore: %v", httpapi.ErrTimeout, err)
	}
	return fmt.Errorf("restore: %w", err)
}
