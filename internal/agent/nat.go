package agent

import (
	"fmt"

	"github.com/raftguard/raftguard/firewall"
	"github.com/raftguard/raftguard/fsm"
)

// NATWarning is the warning bootstrap logs when client configs route
// everything (a default route in the client allowed IPs) into a cluster
// that does not masquerade: clients would reach the servers and the pools,
// and nothing beyond them. It is empty otherwise.
func NATWarning(s fsm.Settings) string {
	if s.NAT {
		return ""
	}
	for _, p := range s.ClientAllowedIPs {
		if p.Bits() == 0 {
			return fmt.Sprintf("client configs route everything (AllowedIPs %s) but NAT is off: clients will reach nothing beyond the tunnel unless the network routes the pools back to the VIP; turn NAT on with --nat at bootstrap or `raftguard cluster settings set --nat=true`", p)
		}
	}
	return ""
}

// recordedFirewall records the NAT table in the claims record before it
// installs it, so that cleanup finds it after a crash.
type recordedFirewall struct {
	*firewall.Manager
	claims *claims
}

// Apply records the table, then installs it.
func (r *recordedFirewall) Apply(cfg firewall.Config) (bool, error) {
	if err := r.claims.update(func(c *claimRecord) { c.NATTable = firewall.TableName }); err != nil {
		return false, err
	}
	return r.Manager.Apply(cfg)
}

// Remove removes the table and takes it off the record.
func (r *recordedFirewall) Remove() (bool, error) {
	changed, err := r.Manager.Remove()
	if err == nil {
		err = r.claims.update(func(c *claimRecord) { c.NATTable = "" })
	}
	return changed, err
}
