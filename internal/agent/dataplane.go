package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/raftguard/raftguard/dataplane"
	"github.com/raftguard/raftguard/firewall"
	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/reconcile"
	"github.com/raftguard/raftguard/vip"
)

// cleanLeftovers removes what a killed process of this node left behind
// (the VIPs, the WireGuard interface, source routing: whatever the claims
// record names), first thing at start: until Raft says otherwise this node
// is not the leader, and another node may already serve those addresses.
// Then it opens the VIP manager and records the interfaces it will claim
// on, before anything is claimed.
func (a *Agent) cleanLeftovers() error {
	if a.cfg.Dataplane == "none" {
		return nil
	}
	iface := a.node.VIPInterface
	if iface == "" {
		addr, err := netip.ParseAddr(a.node.Advertise)
		if err != nil {
			return fmt.Errorf("--vip-interface not given and --advertise %q is not an address to find it by", a.node.Advertise)
		}
		if iface, err = vip.InterfaceFor(addr); err != nil {
			return fmt.Errorf("--vip-interface not given, and no interface holds --advertise %s: %w", addr, err)
		}
	}
	n := a.node
	n.VIPInterface = iface
	removed, err := cleanupLeftovers(a.cfg.DataDir, n, a.log)
	if len(removed) > 0 {
		a.log.Warn("removed what an earlier run of this node left behind", "removed", removed)
	}
	if err != nil {
		return fmt.Errorf("remove what an earlier run left behind: %w", err)
	}
	vm, err := vip.New(iface, a.cfg.Logger)
	if err != nil {
		return fmt.Errorf("VIP interface %s: %w", iface, err)
	}
	a.vips = vm
	a.vipIface = iface
	a.claims = &claims{path: filepath.Join(a.cfg.DataDir, claimsFileName)}
	a.recVIPs = &vipModes{a: a, local: vm, claims: a.claims, log: a.cfg.Logger.With("component", "vip")}
	return a.claims.update(func(r *claimRecord) {
		r.VIPInterface, r.WGInterface = iface, a.node.WGInterface
	})
}

// startDataplane starts the reconcile loop that drives the WireGuard
// interface and the VIPs (nothing with --dataplane none). cleanLeftovers
// has run.
func (a *Agent) startDataplane() error {
	if a.cfg.Dataplane == "none" {
		return nil
	}
	iface, rv := a.vipIface, a.recVIPs
	log := a.cfg.Logger.With("component", "dataplane")
	kind, name := a.cfg.Dataplane, a.node.WGInterface
	a.loop = reconcile.New(reconcile.Config{
		Node: agentNode{a},
		Open: func() (reconcile.Dataplane, error) {
			return dataplane.Open(name, kind, log)
		},
		VIPs:                rv,
		Firewall:            &recordedFirewall{Manager: firewall.New(a.cfg.Logger), claims: a.claims},
		NATInterface:        a.node.NATInterface,
		Log:                 a.cfg.Logger,
		DisableEndpointSync: a.cfg.DisableEndpointSync,
		LeaseRenew:          vip.RenewInterval,
		LeaseLifetime:       vip.Lifetime,
	})
	ctx, cancel := context.WithCancel(context.Background())
	a.loopCancel = cancel
	a.loopDone = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		defer close(a.loopDone)
		if err := a.loop.Run(ctx, a.raft.Subscribe(), started); err != nil {
			a.log.Error("data plane stopped", "err", err)
		}
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("data plane: %w", err)
	}
	a.maxPeers.Store(int64(reconcile.PeerLimit(a.loop.Status().Kind)))
	a.log.Info("data plane started", "interface", name, "vip_interface", iface)
	return nil
}

// peerLimit is the most enabled peers this node's interface holds (0: no
// limit, or no data plane).
func (a *Agent) peerLimit() int {
	if a.cfg.PeerLimit > 0 {
		return a.cfg.PeerLimit
	}
	return int(a.maxPeers.Load())
}

// stopDataplane releases the VIPs, brings the interface down and removes it.
func (a *Agent) stopDataplane() {
	if a.loop == nil {
		return
	}
	a.loopCancel()
	<-a.loopDone
	a.recVIPs.close()
	if err := a.loop.Close(); err != nil {
		a.log.Warn("removing the interface", "err", err)
	} else if err := a.claims.remove(); err != nil {
		a.log.Warn("removing the claims record", "err", err)
	}
	if a.vips != nil {
		a.vips.Close()
	}
}

// agentNode adapts the agent to what the reconcile loop needs.
type agentNode struct{ a *Agent }

func (n agentNode) IsLeader() bool { return n.a.raft.IsLeader() }
func (n agentNode) Term() uint64   { return n.a.raft.Term() }

// VerifyLeader runs one VerifyLeader round and waits for it at most
// timeout. A round that does not finish in time (Raft's leader loop is
// wedged, or no quorum answers) is left to finish in the background, and no
// other starts until it has: a wedged Raft never piles up goroutines.
func (n agentNode) VerifyLeader(timeout time.Duration) error {
	a := n.a
	if !a.verifying.CompareAndSwap(false, true) {
		return errVerifyPending
	}
	done := make(chan error, 1)
	go func() {
		defer a.verifying.Store(false)
		done <- a.raft.VerifyLeader()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w after %v", errVerifyTimeout, timeout)
	}
}

var (
	errVerifyPending = errors.New("verify leader: the previous round has not finished")
	errVerifyTimeout = errors.New("verify leader: no answer from a quorum")
)

func (n agentNode) State() *fsm.FSM { return n.a.state }
func (n agentNode) Propose(t fsm.CommandType, body any) (any, error) {
	return n.a.Apply(t, body)
}
func (n agentNode) HandOver() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := n.a.TransferLeadership(ctx, "")
	return err
}
