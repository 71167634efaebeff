package reconcile

import (
	"sync"
	"testing"

	"github.com/raftguard/raftguard/firewall"
	"github.com/raftguard/raftguard/fsm"
)

// fakeFirewall records whether the NAT table is installed, and with what.
type fakeFirewall struct {
	mu        sync.Mutex // guards installed, cfg
	installed bool
	cfg       firewall.Config
}

func (f *fakeFirewall) Apply(cfg firewall.Config) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := !f.installed || !f.cfg.Equal(cfg)
	f.installed, f.cfg = true, cfg
	return changed, nil
}

func (f *fakeFirewall) Remove() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.installed
	f.installed = false
	return was, nil
}

func (f *fakeFirewall) state() (bool, firewall.Config) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.installed, f.cfg
}

// TestNATFollowsLeadershipAndSetting: the table is on the leader only, and
// only while the cluster's NAT setting is on.
func TestNATFollowsLeadershipAndSetting(t *testing.T) {
	n := newNode(t)
	fw := &fakeFirewall{}
	h := startWith(t, n, false, func(c *Config) { c.Firewall, c.NATInterface = fw, "eth1" })
	h.elect()
	poll(t, "takeover", func() bool { _, up, _ := h.dp.snapshot(); return up })
	if on, _ := fw.state(); on {
		t.Fatal("NAT installed while the setting is off")
	}
	on := true
	n.apply(fsm.CmdUpdateSettings, fsm.UpdateSettings{NAT: &on, At: t0})
	h.loop.Wake()
	poll(t, "NAT installed", func() bool { on, _ := fw.state(); return on })
	if _, cfg := fw.state(); cfg.Interface != "eth1" || len(cfg.Pools) != 1 || cfg.Pools[0].String() != "10.99.0.0/24" {
		t.Fatalf("NAT config %+v", cfg)
	}
	n.leader.Store(false)
	h.lead <- struct{}{}
	poll(t, "NAT removed at step-down", func() bool { on, _ := fw.state(); return !on })
	h.elect()
	poll(t, "NAT installed again", func() bool { on, _ := fw.state(); return on })
	off := false
	n.apply(fsm.CmdUpdateSettings, fsm.UpdateSettings{NAT: &off, At: t0})
	h.loop.Wake()
	poll(t, "NAT removed with the setting", func() bool { on, _ := fw.state(); return !on })
}
