// Package vip owns the cluster's virtual IP addresses on the node's
// --vip-interface.
//
// The Raft leader claims each VIP (one IPv4 and optionally one IPv6, with
// prefix) through netlink and announces it so that the network learns the
// new owner at once: gratuitous ARP for IPv4 (request and reply forms,
// broadcast, sender and target IP both the VIP, sender MAC the NIC's) and an
// unsolicited neighbour advertisement for IPv6 (Override flag set, target
// link-layer address option, sent from the VIP to ff02::1 with
// mdlayher/ndp's message encoding). The announcement goes out at once and
// is repeated a few times over the next seconds in the background. IPv6
// VIPs are added with IFA_F_NODAD so that they are usable at once (a
// tentative address could neither send the advertisement nor answer).
//
// A node that stops being leader, or stops reaching a quorum, releases the
// addresses; Release cancels any announcement still pending, so a node
// never announces an address it no longer holds.
//
// Fencing does not trust the process to stay alive: every VIP is added with
// a finite kernel lifetime (Lifetime) and the leader renews it (Renew)
// every RenewInterval while it has proof of a quorum. A process that is
// killed, hangs or is frozen stops renewing, and the kernel removes the
// address by itself.
//
// Claim and Release are idempotent and report whether they changed
// anything (an address already present is not an error, nor is releasing
// an address someone else already removed). A Manager serves one NIC; a
// present VIP is recognised by its address alone, whatever its prefix
// length on the NIC.
//
// The package takes plain netip.Prefix values and imports neither fsm nor
// raftnode; internal/reconcile decides when to claim and when to release.
// It never runs a command: addresses are managed through netlink and
// announcements are written to raw sockets. Linux-only code sits behind a
// linux build tag; on other systems every operation fails with
// ErrUnsupported.
package vip
