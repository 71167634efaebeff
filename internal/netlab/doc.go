// Package netlab builds throw-away networks out of Linux network
// namespaces, for the end-to-end tests and for `raftguard demo`.
//
// A Lab is a switch (a namespace holding a Linux bridge) and hosts: one
// namespace each, joined to the bridge by a veth pair whose host end is
// called eth0. Everything the lab creates is named with its prefix and a
// random suffix, so that labs of concurrent tests never meet. The lab runs
// processes inside the hosts (tracked by PID, in their own process group,
// killed if the process that started them dies), partitions hosts with
// nftables, puts a host behind another that routes for it (MoveBehind),
// runs a BIRD 2 router, brings up WireGuard clients with Debian's
// wireguard-go and wireguard-tools, and measures outages with ping. Close ends every
// process it started, by PID, and deletes every namespace it created
// (which takes their links and nftables rules with them) and the
// WireGuard control sockets of the interfaces it named.
//
// Unlike the server's packages, netlab configures the network by running
// ip, nft, wg, wireguard-go and ping (os/exec): it is lab tooling, never
// imported by the daemon. It needs root on Linux; Available tells a test
// whether it can run, and why not.
//
// Use only the documentation and tunnel ranges in LabRanges for addresses
// inside a lab.
package netlab
