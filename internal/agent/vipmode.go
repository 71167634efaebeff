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
	awsvip "github.com/raftguard/raftguard/vip/aws"
	"github.com/raftguard/raftguard/vip/hetzner"
	"github.com/raftguard/raftguard/vip/hook"
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

	mu       sync.Mutex  // guards cur, curIf, closeCur
	cur      *vip.Runner // nil before the first claim or release
	curIf    string      // the interface cur keeps the local addresses on
	closeCur func()      // stops what cur's mode runs (a BGP speaker); may be nil
	curLocal bool        // cur's mode delivers the VIPs with the local address alone
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
		if v.closeCur != nil {
			v.closeCur()
		}
	}
	local, iface, m, closeFn := v.a.newMode(mode, v.local)
	_, broken := m.(vip.Broken)
	v.curIf, v.closeCur = iface, closeFn
	// In arp mode the claim itself announces the VIPs; a broken mode never
	// delivers more than the local address does; in hook mode the local
	// address is announced as in arp mode, and the hook may add a path of
	// its own (a cloud API): the clients are greeted at once and again when
	// the hook has succeeded.
	v.curLocal = mode == fsm.VIPModeARP || mode == fsm.VIPModeHook || broken
	v.cur = vip.NewRunner(vip.RunnerConfig{
		Local:      local,
		Mode:       m,
		Log:        v.a.cfg.Logger,
		OpTimeout:  v.a.hookTimeout() + 5*time.Second,
		OnReleased: func() { _ = v.claims.update(func(c *claimRecord) { c.Hook = nil }) },
		// The reconcile loop greets the clients once the network
		// delivers the VIPs here (Delivered).
		OnHeld: func() {
			l := v.a.loop
			switch {
			case l == nil:
			case mode == fsm.VIPModeHook:
				l.Greet()
			default:
				l.Wake()
			}
		},
	})
	return v.cur
}

// Delivered implements reconcile.Delivery: in arp mode (or a mode this node
// cannot run) the claimed local address is all there is; in the others the
// mode must hold the VIPs (its Acquire succeeded: the route announced, the
// hook or cloud API done).
func (v *vipModes) Delivered(vips []netip.Prefix) bool {
	v.mu.Lock()
	r, local := v.cur, v.curLocal
	v.mu.Unlock()
	if r == nil || local {
		return true
	}
	held, err := r.Held(vips)
	return err == nil && held
}

// bgpInterface is the dummy interface on which the bgp mode keeps the VIPs'
// local addresses (not the LAN NIC: nothing answers ARP for them there).
const bgpInterface = "rgvip0"

// newMode builds this node's implementation of mode, with the Manager of
// the interface that keeps the VIPs' local addresses (nic: the
// --vip-interface one), that interface's name and a function that stops
// the mode (nil when there is nothing to stop). A mode this node cannot
// run (a node-local flag it needs is missing) is a vip.Broken that reports
// why on every attempt, keeping the local addresses on the NIC.
func (a *Agent) newMode(mode string, nic *vip.Manager) (vip.Local, string, vip.Mode, func()) {
	broken := func(err error) (vip.Local, string, vip.Mode, func()) {
		a.log.Error("this node cannot run the cluster's VIP mode", "vip_mode", mode, "err", err)
		return nic, a.vipIface, vip.Broken{Mode: mode, Err: err}, nil
	}
	switch mode {
	case fsm.VIPModeARP:
		return nic, a.vipIface, vip.ARP{M: nic}, nil
	case fsm.VIPModeHook:
		h, err := hook.New(a.node.VIPHook, a.node.NodeID, a.hookTimeout(), a.cfg.Logger)
		if err != nil {
			return broken(err)
		}
		return nic, a.vipIface, h, nil
	case fsm.VIPModeBGP:
		cfg, err := a.bgpConfig()
		if err != nil {
			return broken(err)
		}
		iface := bgpInterface
		if err := vip.EnsureDummy(iface); err != nil {
			// A kernel without the dummy driver: loopback serves as well.
			a.log.Warn("no dummy interface for the bgp mode's VIPs: using lo", "err", err)
			iface = "lo"
		}
		m, err := vip.New(iface, a.cfg.Logger)
		if err != nil {
			return broken(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := vip.NewBGP(ctx, cfg, a.cfg.Logger)
		if err != nil {
			m.Close()
			return broken(err)
		}
		return vip.HostRoutes{Local: m}, iface, b, func() { b.Close(); m.Close() }
	case fsm.VIPModeHetzner:
		h, err := a.hetznerMode()
		if err != nil {
			return broken(err)
		}
		// Hetzner routes the floating IP to the server; the server holds
		// the address itself, as a host address on its NIC.
		return vip.HostRoutes{Local: nic}, a.vipIface, h, nil
	case fsm.VIPModeAWS:
		m, err := awsvip.New(awsvip.Config{Region: a.node.AWSRegion, InstanceID: a.node.AWSInstanceID, EIP: a.node.AWSEIP, Endpoint: a.node.AWSEndpoint, Log: a.cfg.Logger})
		if err != nil {
			return broken(err)
		}
		// The VIP is a secondary private IP of the subnet, held on the NIC
		// like in arp mode; the Elastic IP is 1:1 NAT onto it.
		return nic, a.vipIface, m, nil
	}
	return broken(fmt.Errorf("VIP mode %s is not available in this build", mode))
}

// bgpConfig is the bgp mode's configuration from the node's settings.
func (a *Agent) bgpConfig() (vip.BGPConfig, error) {
	n := a.node
	cfg := vip.BGPConfig{ASN: n.BGPASN, HoldTime: time.Duration(n.BGPHoldTime), Password: a.cfg.VIPModes.BGPPassword}
	cfg.Term = a.raft.Term
	for _, s := range n.BGPNeighbors {
		nb, err := vip.ParseBGPNeighbor(s)
		if err != nil {
			return cfg, err
		}
		cfg.Neighbors = append(cfg.Neighbors, nb)
	}
	if n.BGPRouterID != "" {
		id, err := netip.ParseAddr(n.BGPRouterID)
		if err != nil || !id.Is4() {
			return cfg, fmt.Errorf("%w: --bgp-router-id %q is not an IPv4 address", vip.ErrBGP, n.BGPRouterID)
		}
		cfg.RouterID = id
	}
	if adv, err := netip.ParseAddr(n.Advertise); err == nil {
		if adv = adv.Unmap(); adv.Is4() {
			cfg.NextHop4 = adv
		} else {
			cfg.NextHop6 = adv
		}
	}
	return cfg, cfg.Check()
}

// hetznerMode is the hetzner mode from the node's settings; the token is
// read from its file now.
func (a *Agent) hetznerMode() (*hetzner.Mode, error) {
	tok, err := hetzner.ReadTokenFile(a.node.HetznerTokenFile)
	if err != nil {
		return nil, err
	}
	return hetzner.New(hetzner.Config{Token: tok, ServerID: a.node.HetznerServerID, Endpoint: a.node.HetznerEndpoint, Log: a.cfg.Logger})
}

func (a *Agent) hookTimeout() time.Duration {
	if a.node.VIPHookTimeout > 0 {
		return time.Duration(a.node.VIPHookTimeout)
	}
	return hook.DefaultTimeout
}

// Claim records the VIPs (and, in hook mode, that the hook may need a
// release), then claims them.
func (v *vipModes) Claim(vips []netip.Prefix) (bool, error) {
	r := v.runner(vips)
	v.mu.Lock()
	iface := v.curIf
	v.mu.Unlock()
	err := v.claims.update(func(c *claimRecord) {
		c.VIPs = slices.Clone(vips)
		c.VIPInterface = iface
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
	// A follower runs the current mode too (the bgp mode keeps its
	// sessions up on every node, so that a new leader only announces).
	var r *vip.Runner
	if v.a.state.Initialized() {
		r = v.runner(vips)
	}
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
func (v *vipModes) Renew(vips []netip.Prefix) (bool, error) {
	v.mu.Lock()
	r := v.cur
	v.mu.Unlock()
	if r == nil {
		return v.local.Renew(vips)
	}
	return r.Renew(vips)
}

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
	r, closeFn := v.cur, v.closeCur
	v.cur, v.closeCur = nil, nil
	v.mu.Unlock()
	if r != nil {
		r.Close(v.a.hookTimeout())
	}
	if closeFn != nil {
		closeFn()
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
	hk, err := hook.New(h.Path, h.NodeID, timeout, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout*time.Duration(len(h.VIPs)+1))
	defer cancel()
	if _, err := hk.Release(ctx, h.VIPs); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("ran %s release for %v", h.Path, h.VIPs)}, nil
}
