// Package firewall owns the leader's NAT and forwarding for the tunnel
// pools: one nftables table of its own (TableName, family inet), written
// through netlink with github.com/google/nftables (no nft or iptables
// command), and the IP forwarding sysctls.
//
// The table holds two base chains:
//
//   - postrouting (type nat, hook postrouting, priority srcnat):
//     masquerade for traffic from each pool leaving the NAT interface;
//   - forward (type filter, hook forward, priority filter, policy accept):
//     accept for traffic from and to each pool.
//
// A verdict in one table does not bind another: a forward chain of another
// table (ufw, firewalld, Docker) whose policy is drop still drops the
// pools' traffic; allow the pools there too.
//
// Apply also sets net.ipv4.ip_forward (and, with an IPv6 pool,
// net.ipv6.conf.all.forwarding) to 1 by writing /proc/sys. Remove deletes
// the table and leaves the sysctls as they are: another service on the
// host may rely on them, and a node that may become leader again needs
// them anyway. Note that with IPv6 forwarding on, the kernel ignores
// router advertisements on interfaces whose accept_ra is 1 (set it to 2
// where the host takes its IPv6 address or route from them).
//
// Like the interface and the VIP, the table follows the leader: the
// reconcile loop applies it while this node leads and removes it when the
// node steps down; a node that died with it in place has it removed by
// `raftguard cleanup` or at its next start (the claims record names it).
package firewall
