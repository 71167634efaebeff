package agent

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
)

var _ httpapi.ClusterService = (*Agent)(nil)

// UpdateSettings changes cluster settings (on the leader), validated by
// the rules bootstrap applies (fsm.ValidateSettings), and returns the new
// settings.
func (a *Agent) UpdateSettings(p httpapi.SettingsPatch) (fsm.Settings, error) {
	c := fsm.UpdateSettings{Endpoint: p.Endpoint, MTU: p.MTU, Keepalive: p.Keepalive, At: time.Now().UTC()}
	if p.ClientAllowedIPs != nil {
		allowed := []netip.Prefix{}
		for _, s := range splitList(*p.ClientAllowedIPs) {
			pf, err := fsm.ParsePrefix(s)
			if err != nil {
				return fsm.Settings{}, fmt.Errorf("client allowed IPs: %w", err)
			}
			allowed = append(allowed, pf)
		}
		c.ClientAllowedIPs = &allowed
	}
	if p.ClientDNS != nil {
		dns := splitList(*p.ClientDNS)
		if dns == nil {
			dns = []string{}
		}
		c.ClientDNS = &dns
	}
	// Check first, so that a refused change is not proposed; Apply checks
	// again.
	next := a.state.Settings().Updated(c)
	if err := fsm.ValidateSettings(&next); err != nil {
		return fsm.Settings{}, err
	}
	if _, err := a.Apply(fsm.CmdUpdateSettings, c); err != nil {
		return fsm.Settings{}, err
	}
	return a.state.Settings(), nil
}
