// Package dataplane owns the node's WireGuard interface: the link itself, its
// addresses, MTU and up/down state, the WireGuard device configuration
// (private key, listen port, peers) and, for the userspace device, the UDP
// sockets WireGuard sends and receives on.
//
// Two backends sit behind one Device interface, chosen by Open's kind
// ("auto", "kernel", "userspace"):
//
//   - kernel: a link of type "wireguard" created through netlink and
//     configured through wgctrl (generic netlink);
//   - userspace: an embedded golang.zx2c4.com/wireguard device on a TUN
//     link, configured through its IpcSet/IpcGet (UAPI text protocol), with a
//     UAPI socket in /var/run/wireguard/<name>.sock so that `wg show` works
//     against it.
//
// Set(Config) is idempotent: it keeps the last applied device configuration
// in memory, computes the difference with the wanted one and applies only
// that (per-peer remove / update_only, never replace_peers), so adding or
// removing one peer on an interface with 100,000 peers touches that peer
// alone. Addresses, MTU and the link state are read back from the kernel on
// every Set, so a change made behind the package's back is repaired. A Peer's
// Endpoint is only used when the peer is added: a live endpoint the device
// learned by roaming is never overwritten by Set (InitiateHandshake does set
// it, on purpose).
//
// Up false (a follower) means the link is administratively down and the
// device sends nothing at all: the userspace device is taken down (its
// sockets are closed), the kernel device closes its socket when the link goes
// down. Set works the same whether the link is up or down, so followers hold
// the full configuration and take over at once.
//
// Both backends run one Set (set_linux.go), in one order: a device to be
// down stops sending first, then the device configuration, the link's
// addresses and MTU, and a device to be up comes up last. A backend adds
// only its own steps (setSteps): the kernel device installs its source
// fence first and builds its source routing last; the userspace device
// checks its peer limit and hands its TUN the MTU.
//
// # The VIP as source address
//
// Every WireGuard packet the leader sends must leave from a virtual IP
// (Config.SourceAddrs), or clients roam to the node's own address.
//
// Userspace: the package brings its own conn.Bind (bind_linux.go) that opens
// one UDP socket per source address, bound to exactly VIP:ListenPort with
// IP_FREEBIND/IPV6_FREEBIND (so it binds before the VIP is on the NIC), and
// sends each packet through the socket the peer's last packet arrived on, or
// else the first socket of the peer's address family. With no SourceAddrs it
// binds the wildcard addresses. The library's standard bind cannot be used:
// with UDP GRO its receive path loses the IP_PKTINFO control data
// (splitCoalescedMessages), so replies leave from the primary address.
//
// Kernel: the kernel module already replies from the address a packet
// arrived on (it caches the source per peer). For packets with no cached
// source (a handshake the new leader initiates to a stored endpoint), the
// device gets a firewall mark and the package keeps a policy routing rule
// "fwmark -> table" whose table holds copies of the main table's routes with
// their preferred source set to the VIP of the family. Those routes can only
// exist while the VIP is on a local interface, so they are (re)built on every
// Set while the interface is up and, until that succeeded, before each
// InitiateHandshake (the VIP is claimed after the interface comes up); they
// are removed when the interface goes down or closes. Where the kernel has
// no WireGuard module, `make test-kernel` runs the kernel backend's tests
// (among them the VIP as the source of every packet) in a VM with Debian's
// kernel.
//
// Peer changes made behind the package's back (`wg set`) are not detected:
// the package trusts its in-memory copy of what it applied, which is what
// makes one-peer changes cheap on a large interface.
//
// The package imports neither fsm nor raftnode: translating replicated state
// into a Config is internal/reconcile's job. Interfaces are configured
// through netlink, wgctrl and the embedded device, never by running a
// command. Linux-only code sits behind a linux build tag; on other systems
// Open returns ErrUnsupported.
//
// Neither private nor preshared keys ever appear in a log line or an error.
package dataplane
