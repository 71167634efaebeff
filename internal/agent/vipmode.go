package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/vip"
)

// vipModes is what the reconcile loop claims and releases the VIPs
// through: a vip.Runner for the cluster's VIP mode (read from the
// replicated settings at each claim, so a changed mode takes effect on the
// leader's next pass), recording in the claims file what it claims before
// it claims it.
type vipModes struct {
	a      *Agent
	local  *vip.Manager // the lease-bounded address on --vip-interface
	claims *claims
	log    *slog.Logger

	mu  sync.Mutex  // guards cur
	cur *vip.Runner // nil before the first claim
}

// runner returns the Runner for the current mode, replacing one of another
// mode (its VIPs released first).
func (v *vipModes) runner(vips []netip.Prefix) *vip.Runner {
	mode := v.a.state.Settings().Mode()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur != nil && v.cur.Mode() == mode {
		return v.cur
	}
	if old := v.cur; old != nil {
		v.log.Info("VIP mode changed: releasing through the old mode", "from", old.Mode(), "to", mode)
		if _, err := old.Release(vips); err != nil {
			v.log.Warn("releasing through the old VIP mode", "mode", old.Mode(), "err", err)
		}
		old.Close(v.a.hookTimeout())
	}
	v.cur = vip.NewRunner(vip.RunnerConfig{
		Local:      v.local,
		Mode:       v.a.newMode(mode, v.local),
		Log:        v.a.cfg.Logger,
		OpTimeout:  v.a.hookTimeout() + 5*time.Second,
		OnReleased: func() { _ = v.claims.update(func(c *claimRecord) { c.Hook = nil }) },
	})
	return v.cur
}

// newMode builds this node's implementation of mode; a mode this node
// cannot run (a node-local flag it needs is missing) is a vip.Broken that
// reports why on every attempt.
func (a *Agent) newMode(mode string, local *vip.Manager) vip.Mode {
	switch mode {
	case fsm.VIPModeARP:
		return vip.ARP{M: local}
	case fsm.VIPModeHook:
		h, err := vip.NewHook(a.node.VIPHook, a.node.NodeID, a.hookTimeout(), a.cfg.Logger)
		if err != nil {
			return vip.Broken{Mode: mode, Err: err}
		}
		return h
	}
	return vip.Broken{Mode: mode, Err: fmt.Errorf("VIP mode %s is not available in this build", mode)}
}

func (a *Agent) hookTimeout() time.Duration {
	if a.node.VIPHookTimeout > 0 {
		return time.Duration(a.node.VIPHookTimeout)
	}
	return vip.DefaultHookTimeout
}

// Claim records the VIPs (and, in hook mode, that the hook may need a
// release), then claims them.
func (v *vipModes) Claim(vips []netip.Prefix) (bool, error) {
	r := v.runner(vips)
	err := v.claims.update(func(c *claimRecord) {
		c.VIPs = slices.Clone(vips)
		if r.Mode() == fsm.VIPModeHook {
			c.Hook = &hookClaim{Path: v.a.node.VIPHook, NodeID: v.a.node.NodeID, VIPs: slices.Clone(vips)}
		}
	})
	if err != nil {
		return false, err
	}
	return r.Claim(vips)
}

// Release releases the VIPs and takes them off the record (the hook's
// record goes once its release has run).
func (v *vipModes) Release(vips []netip.Prefix) (bool, error) {
	v.mu.Lock()
	r := v.cur
	v.mu.Unlock()
	var (
		changed bool
		err     error
	)
	if r != nil {
		changed, err = r.Release(vips)
	} else {
		changed, err = v.local.Release(vips)
	}
	if err == nil {
		err = v.claims.update(func(c *claimRecord) { c.VIPs = nil })
	}
	return changed, err
}

// Held reports whether the VIPs are held locally and by the mode.
func (v *vipModes) Held(vips []netip.Prefix) (bool, error) {
	v.mu.Lock()
	r := v.cur
	v.mu.Unlock()
	if r == nil {
		return false, nil
	}
	return r.Held(vips)
}

// Renew renews the local addresses' lease.
func (v *vipModes) Renew(vips []netip.Prefix) (bool, error) { return v.local.Renew(vips) }

// status is the mode's state for the API: its name, whether it really
// holds the VIPs, its last error.
func (v *vipModes) status() vip.ModeStatus {
	v.mu.Lock()
	r := v.cur
	v.mu.Unlock()
	if r == nil {
		return vip.ModeStatus{Mode: v.a.state.Settings().Mode()}
	}
	return r.Status()
}

// close waits (bounded by the hook timeout) for a pending release of the
// mode, then stops it.
func (v *vipModes) close() {
	v.mu.Lock()
	r := v.cur
	v.cur = nil
	v.mu.Unlock()
	if r != nil {
		r.Close(v.a.hookTimeout())
	}
}

// hookClaim records, in the claims file, that the hook ran "acquire" and
// has not run "release" since: cleanup runs it.
type hookClaim struct {
	Path   string         `json:"path"`
	NodeID string         `json:"node_id"`
	VIPs   []netip.Prefix `json:"vips"`
}

// runHookRelease runs the recorded hook's release (cleanup of a node whose
// process died while it held the VIPs).
func runHookRelease(h *hookClaim, timeout time.Duration, log *slog.Logger) ([]string, error) {
	hook, err := vip.NewHook(h.Path, h.NodeID, timeout, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout*time.Duration(len(h.VIPs)+1))
	defer cancel()
	if _, err := hook.Release(ctx, h.VIPs); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("ran %s release for %v", h.Path, h.VIPs)}, nil
}
