// Package vip owns the cluster's virtual IP addresses on the node's
// --vip-interface.
//
// The Raft leader claims each VIP (one IPv4 and optionally one IPv6, with
// prefix) through netlink and announces it so that the network learns the
// new owner at once: gratuitous ARP for IPv4 and unsolicited neighbour
// advertisements (mdlayher/ndp) for IPv6, repeated a few times. A node that
// stops being leader, or stops reaching a quorum, releases the addresses.
//
// Claim and Release are idempotent and report whether they changed
// anything (an address already present is not an error). The package takes
// its own small Config values and imports neither fsm nor raftnode;
// internal/reconcile decides when to claim and when to release. It never
// runs a command: addresses are managed through netlink only. Linux-only
// code sits behind a linux build tag with a stub beside it.
package vip
