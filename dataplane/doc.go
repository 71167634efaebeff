// Package dataplane owns the node's WireGuard interface.
//
// It drives either the kernel WireGuard module (link management through
// netlink, device configuration through wgctrl) or an embedded userspace
// wireguard-go device on a TUN interface, chosen by the --dataplane flag
// ("auto", "kernel", "userspace" or "none").
//
// Its Set(Config) is idempotent: it compares the wanted configuration
// (private key, listen port, addresses, MTU, peers) with what the device
// holds and applies only the difference, reporting whether anything
// changed. It brings the interface up and down, reads per-peer statistics
// and last-seen endpoints, and initiates handshakes to known peer endpoints
// after a leadership change. For the userspace device it owns the UDP socket
// (a bind of its own) so that every WireGuard packet leaves from the VIP.
//
// The package takes its own small Config values and imports neither fsm
// nor raftnode: translating replicated state into a Config is the job of
// internal/reconcile. Interfaces are configured through netlink and wgctrl
// (or the embedded device), never by running a command. Linux-only code
// sits behind a linux build tag with a stub beside it.
package dataplane
