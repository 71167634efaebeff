package firewall

import (
	"errors"
	"net/netip"
	"slices"
)

// TableName is the nftables table (family inet) that holds the rules.
const TableName = "raftguard"

// Config is what the table should hold.
type Config struct {
	// Interface is the egress NIC traffic is masqueraded on; empty means
	// the interface of the default route, looked up at each Apply.
	Interface string
	// Pools are the tunnel networks whose traffic is masqueraded and
	// forwarded.
	Pools []netip.Prefix
}

// Equal reports whether c and o describe the same rules.
func (c Config) Equal(o Config) bool {
	return c.Interface == o.Interface && slices.Equal(c.Pools, o.Pools)
}

// ErrNoDefaultRoute: the NAT interface was not given and no default route
// names one.
var ErrNoDefaultRoute = errors.New("no default route to take the NAT interface from (give --nat-interface)")

// ErrUnsupported: this system has no nftables (not Linux).
var ErrUnsupported = errors.New("NAT needs Linux nftables")
