package agent

import (
	"slices"
	"time"

	"github.com/raftguard/raftguard/fsm"
)

// expiryInterval is how often the leader looks for peers whose expiry has
// passed.
const expiryInterval = time.Second

// maxExpireBatch bounds one expire-peers command.
const maxExpireBatch = 2000

// expiryLoop disables, on the leader and through the replicated log, the
// peers whose expiry has passed (the leader's clock decides, and the time
// travels in the command). A new leader picks up where the old one
// stopped: the due peers are read from the replicated state.
func (a *Agent) expiryLoop() {
	defer a.wg.Done()
	t := time.NewTicker(expiryInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		if err := a.expireDue(); err != nil {
			a.log.Warn("peer expiry", "err", err)
		}
	}
}

func (a *Agent) expireDue() error {
	if !a.raft.IsLeader() || !a.state.Initialized() || a.state.ClusterVersion() < fsm.CommandSince(fsm.CmdExpirePeers) {
		return nil
	}
	now := time.Now().UTC()
	names := a.state.DuePeers(now, maxExpireBatch)
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	if _, err := a.Apply(fsm.CmdExpirePeers, fsm.ExpirePeers{Names: names, At: now}); err != nil {
		return err
	}
	a.log.Info("peers expired: disabled", "peers", len(names))
	return nil
}
