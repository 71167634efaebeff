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
//
// Afterwards it keeps the current members reachable: a backup taken before
// a node joined (or moved) does not hold its API address, which forwarding
// needs. That also applies at least one command after the restore, which
// moves the state machine's index past every index from before the
// restore (the restored state carries the backup's own, older index). Each
// member also keeps its own admin token (the CLI on that node uses it),
// even when the backup predates the node.
func (a *Agent) RestoreSnapshot(r io.Reader, size int64) error {
	before := a.state.Nodes()
	var nodeTokens []fsm.AdminToken
	for _, n := range before {
		for _, t := range a.state.AdminTokens() {
			if t.ID == NodeTokenID(n.ID) {
				nodeTokens = append(nodeTokens, t)
			}
		}
	}
	if err := raftError(a.raft.Restore(r, size, time.Minute)); err != nil {
		return err
	}
	a.log.Info("replicated state restored from a snapshot", "bytes", size)
	if err := a.reregister(before); err != nil {
		a.log.Warn("re-registering nodes after the restore", "err", err)
	}
	if err := a.restoreNodeTokens(nodeTokens); err != nil {
		a.log.Warn("restoring the nodes' own admin tokens after the restore", "err", err)
	}
	return nil
}

// reregister records again the registrations of the Raft members among
// nodes (the state before a restore) that the restored state lacks or holds
// differently, and always this node's own.
func (a *Agent) reregister(nodes []fsm.Node) error {
	servers, err := a.Servers()
	if err != nil {
		return err
	}
	member := map[string]bool{}
	for _, m := range servers {
		member[m.ID] = true
	}
	for _, n := range nodes {
		if !member[n.ID] {
			continue
		}
		if got, ok := a.state.Node(n.ID); ok && got.RaftAddr == n.RaftAddr && got.APIAddr == n.APIAddr && n.ID != a.node.NodeID {
			continue
		}
		if _, err := a.Apply(fsm.CmdRegisterNode, fsm.RegisterNode{ID: n.ID, RaftAddr: n.RaftAddr, APIAddr: n.APIAddr, At: time.Now().UTC()}); err != nil {
			return fmt.Errorf("register %s: %w", n.ID, err)
		}
	}
	return nil
}

// restoreNodeTokens adds back the members' own admin tokens that the
// restored state lacks or holds with another hash.
func (a *Agent) restoreNodeTokens(tokens []fsm.AdminToken) error {
	for _, t := range tokens {
		if got, ok := a.state.AdminTokenByHash(t.Hash); ok && got.ID == t.ID {
			continue
		}
		at := time.Now().UTC()
		if _, err := a.Apply(fsm.CmdRevokeAdminToken, fsm.RevokeAdminToken{ID: t.ID, At: at}); err != nil && !errors.Is(err, fsm.ErrNotFound) {
			return err
		}
		if _, err := a.Apply(fsm.CmdAddAdminToken, fsm.AddAdminToken{Token: t, At: at}); err != nil {
			return fmt.Errorf("token %s: %w", t.ID, err)
		}
	}
	return nil
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
