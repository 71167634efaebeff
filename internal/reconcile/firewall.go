package reconcile

import (
	"net/netip"

	"github.com/raftguard/raftguard/firewall"
	"github.com/raftguard/raftguard/fsm"
)

// Firewall is what the loop needs from the NAT table (package firewall).
type Firewall interface {
	Apply(cfg firewall.Config) (bool, error)
	Remove() (bool, error)
}

// firewallConfig is the NAT table the settings ask for on the leader;
// ok is false when NAT is off.
func (l *Loop) firewallConfig(set fsm.Settings) (cfg firewall.Config, ok bool) {
	if !set.NAT {
		return cfg, false
	}
	cfg.Interface = l.cfg.NATInterface
	for _, p := range []netip.Prefix{set.Pool, set.Pool6} {
		if p.IsValid() {
			cfg.Pools = append(cfg.Pools, p.Masked())
		}
	}
	return cfg, true
}

// serveFirewall installs the NAT table on the leader when the settings
// ask for NAT, and removes it when they do not. A failure is logged (once
// per distinct error) and retried on the next pass; it does not make the
// leader hand over: the tunnel itself still works.
func (l *Loop) serveFirewall(set fsm.Settings) {
	if l.cfg.Firewall == nil {
		return
	}
	var err error
	if cfg, ok := l.firewallConfig(set); ok {
		_, err = l.cfg.Firewall.Apply(cfg)
	} else {
		_, err = l.cfg.Firewall.Remove()
	}
	l.reportFirewall(err)
}

// removeFirewall removes the NAT table (on stepping down).
func (l *Loop) removeFirewall() error {
	if l.cfg.Firewall == nil {
		return nil
	}
	_, err := l.cfg.Firewall.Remove()
	return err
}

func (l *Loop) reportFirewall(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	prev, _ := l.firewallErr.Swap(msg).(string)
	switch {
	case err != nil && msg != prev:
		l.log.Error("NAT: cannot install the nftables table (retrying every pass)", "err", err)
	case err == nil && prev != "":
		l.log.Info("NAT: the nftables table is in place again")
	}
}
