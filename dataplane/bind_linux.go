//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// sourceBind is the userspace device's conn.Bind. It owns the UDP sockets so
// that every WireGuard packet leaves from a chosen source address (the VIP):
//
//   - with source addresses, it opens one socket per address, bound to
//     exactly addr:port with IP_FREEBIND/IPV6_FREEBIND (so it binds before
//     the VIP is on the NIC); the kernel then uses that address as the source
//     of everything sent through the socket;
//   - without, it binds the IPv4 and IPv6 wildcard addresses.
//
// A packet to a peer goes through the socket the peer's last packet arrived
// on (the endpoint remembers it), else through the first socket of the
// peer's address family. Nothing relies on IP_PKTINFO control data, and UDP
// GRO/GSO are not enabled (each read and write is one datagram, in batches
// through recvmmsg/sendmmsg).
type sourceBind struct {
	mu      sync.RWMutex  // guards sources, mark and socks
	sources []netip.Addr  // addresses to bind; empty: the wildcard addresses
	mark    uint32        // SO_MARK for every socket; 0: none
	socks   []*bindSocket // the open sockets; nil when closed

	msgs sync.Pool // *[]ipv6.Message for Send
}

// bindSocket is one open UDP socket of a sourceBind.
type bindSocket struct {
	local netip.Addr // the bound address (unspecified for the wildcard)
	is6   bool
	conn  *net.UDPConn
	batch batchConn
}

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common
// (their Message types are the same type).
type batchConn interface {
	ReadBatch(ms []ipv6.Message, flags int) (int, error)
	WriteBatch(ms []ipv6.Message, flags int) (int, error)
}

// sourceEndpoint is a peer's address as the sourceBind knows it. It is
// immutable once made (the device reads it without locks while sending).
type sourceEndpoint struct {
	dst netip.AddrPort // the peer's address
	src netip.Addr     // the local address its last packet arrived on; zero if none
}

var (
	_ conn.Bind     = (*sourceBind)(nil)
	_ conn.Endpoint = (*sourceEndpoint)(nil)
)

// bindSocketBuffer is the socket buffer size asked for (as the standard bind
// does: 7 MiB, beyond net.core.[rw]mem_max with CAP_NET_ADMIN).
const bindSocketBuffer = 7 << 20

func newSourceBind() *sourceBind {
	return &sourceBind{
		msgs: sync.Pool{New: func() any {
			ms := make([]ipv6.Message, conn.IdealBatchSize)
			for i := range ms {
				ms[i].Buffers = make(net.Buffers, 1)
			}
			return &ms
		}},
	}
}

// setSources sets the addresses the next Open binds. It does not rebind:
// the caller then calls the device's BindUpdate.
func (b *sourceBind) setSources(addrs []netip.Addr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sources = append([]netip.Addr(nil), addrs...)
}

// boundAddrs returns the local addresses of the open sockets.
func (b *sourceBind) boundAddrs() []netip.AddrPort {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []netip.AddrPort
	for _, s := range b.socks {
		out = append(out, s.conn.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return out
}

// Open implements conn.Bind.
func (b *sourceBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.socks != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	addrs := b.sources
	wildcard := len(addrs) == 0
	if wildcard {
		addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	var (
		socks []*bindSocket
		bound uint16
	)
	for tries := 0; ; tries++ {
		var err error
		socks, bound, err = listenAll(addrs, port, b.mark, wildcard)
		if err == nil {
			break
		}
		// With a random port, the port the first socket got may be taken
		// for another address: try another one, as the standard bind does.
		if port == 0 && errors.Is(err, syscall.EADDRINUSE) && tries < 100 {
			continue
		}
		return nil, 0, err
	}
	b.socks = socks
	fns := make([]conn.ReceiveFunc, len(socks))
	for i, s := range socks {
		fns[i] = s.receiveFunc()
	}
	return fns, bound, nil
}

// listenAll opens one socket per address on port (0: the first socket picks
// one and the others use it). In wildcard mode a family the system does not
// support is skipped.
func listenAll(addrs []netip.Addr, port uint16, mark uint32, wildcard bool) ([]*bindSocket, uint16, error) {
	var socks []*bindSocket
	closeAll := func() {
		for _, s := range socks {
			s.conn.Close()
		}
	}
	for _, a := range addrs {
		s, err := listenSocket(a, port, mark)
		if err != nil {
			if wildcard && errors.Is(err, syscall.EAFNOSUPPORT) {
				continue
			}
			closeAll()
			return nil, 0, err
		}
		port = s.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		socks = append(socks, s)
	}
	if len(socks) == 0 {
		return nil, 0, syscall.EAFNOSUPPORT
	}
	return socks, port, nil
}

// listenSocket opens a UDP socket bound to a:port.
func listenSocket(a netip.Addr, port uint16, mark uint32) (*bindSocket, error) {
	is6 := a.Is6()
	network := "udp4"
	if is6 {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			// Best effort, as in the standard bind: a smaller buffer only
			// costs throughput.
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, bindSocketBuffer)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, bindSocketBuffer)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bindSocketBuffer)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bindSocketBuffer)
			if !a.IsUnspecified() {
				if is6 {
					serr = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
					if serr != nil { // kernels before 4.15: IP_FREEBIND covers IPv6 too
						serr = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
					}
				} else {
					serr = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
				}
				if serr != nil {
					serr = fmt.Errorf("set freebind: %w", serr)
					return
				}
			}
			if mark != 0 {
				if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); serr != nil {
					serr = fmt.Errorf("set SO_MARK: %w", serr)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(a, port).String())
	if err != nil {
		return nil, err
	}
	uc := pc.(*net.UDPConn)
	s := &bindSocket{local: a, is6: is6, conn: uc}
	if is6 {
		s.batch = ipv6.NewPacketConn(uc)
	} else {
		s.batch = ipv4.NewPacketConn(uc)
	}
	return s, nil
}

// receiveFunc returns the conn.ReceiveFunc reading s. The device calls each
// ReceiveFunc from one goroutine, so the messages are the closure's own.
func (s *bindSocket) receiveFunc() conn.ReceiveFunc {
	msgs := make([]ipv6.Message, conn.IdealBatchSize)
	for i := range msgs {
		msgs[i].Buffers = make(net.Buffers, 1)
	}
	var src netip.Addr
	if !s.local.IsUnspecified() {
		src = s.local
	}
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n := min(len(bufs), len(msgs))
		for i := range n {
			msgs[i].Buffers[0] = bufs[i]
			msgs[i].N, msgs[i].Addr = 0, nil
		}
		got, err := s.batch.ReadBatch(msgs[:n], 0)
		if err != nil {
			return 0, err
		}
		for i := range got {
			sizes[i] = msgs[i].N
			ua, ok := msgs[i].Addr.(*net.UDPAddr)
			if !ok || sizes[i] == 0 {
				sizes[i] = 0
				continue
			}
			ap := ua.AddrPort()
			eps[i] = &sourceEndpoint{dst: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), src: src}
		}
		return got, nil
	}
}

// Close implements conn.Bind. The receive functions then return an error
// wrapping net.ErrClosed.
func (b *sourceBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, s := range b.socks {
		if err := s.conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	b.socks = nil
	return errors.Join(errs...)
}

// SetMark implements conn.Bind: SO_MARK on every socket, now and later.
func (b *sourceBind) SetMark(mark uint32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mark = mark
	for _, s := range b.socks {
		rc, err := s.conn.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set SO_MARK: %w", serr)
		}
	}
	return nil
}

// pick returns the socket to send to e through: the one e's last packet
// arrived on, else the first of e's family; nil if there is none.
func (b *sourceBind) pick(e *sourceEndpoint) *bindSocket {
	b.mu.RLock()
	defer b.mu.RUnlock()
	is6 := e.dst.Addr().Is6()
	var first *bindSocket
	for _, s := range b.socks {
		if s.is6 != is6 {
			continue
		}
		if e.src.IsValid() && s.local == e.src {
			return s
		}
		if first == nil {
			first = s
		}
	}
	return first
}

// Send implements conn.Bind. bufs may be longer than BatchSize (the device
// batches up to its own, larger, size): they go out in chunks.
func (b *sourceBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*sourceEndpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	s := b.pick(e)
	if s == nil {
		return syscall.EAFNOSUPPORT
	}
	ua := &net.UDPAddr{IP: e.dst.Addr().AsSlice(), Port: int(e.dst.Port()), Zone: e.dst.Addr().Zone()}
	mp := b.msgs.Get().(*[]ipv6.Message)
	defer b.msgs.Put(mp)
	msgs := *mp
	for len(bufs) > 0 {
		n := min(len(bufs), len(msgs))
		for i := range n {
			msgs[i].Buffers[0] = bufs[i]
			msgs[i].Addr = ua
			msgs[i].N, msgs[i].NN, msgs[i].OOB = 0, 0, nil
		}
		for sent := 0; sent < n; {
			k, err := s.batch.WriteBatch(msgs[sent:n], 0)
			if err == nil && k == 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				clearMsgs(msgs[:n])
				return err
			}
			sent += k
		}
		clearMsgs(msgs[:n])
		bufs = bufs[n:]
	}
	return nil
}

// clearMsgs drops the references to packet buffers before the messages go
// back to the pool.
func clearMsgs(ms []ipv6.Message) {
	for i := range ms {
		ms[i].Buffers[0] = nil
		ms[i].Addr = nil
	}
}

// ParseEndpoint implements conn.Bind.
func (b *sourceBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &sourceEndpoint{dst: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// BatchSize implements conn.Bind.
func (b *sourceBind) BatchSize() int { return conn.IdealBatchSize }

// ClearSrc implements conn.Endpoint. It does nothing: the source is only a
// hint for choosing the socket, and a stale one (after a rebind) matches no
// socket, so the first socket of the family is used.
func (e *sourceEndpoint) ClearSrc() {}

// SrcToString implements conn.Endpoint.
func (e *sourceEndpoint) SrcToString() string {
	if !e.src.IsValid() {
		return ""
	}
	return e.src.String()
}

// DstToString implements conn.Endpoint.
func (e *sourceEndpoint) DstToString() string { return e.dst.String() }

// DstToBytes implements conn.Endpoint (used for cookie MACs).
func (e *sourceEndpoint) DstToBytes() []byte {
	out, _ := e.dst.MarshalBinary()
	return out
}

// DstIP implements conn.Endpoint.
func (e *sourceEndpoint) DstIP() netip.Addr { return e.dst.Addr() }

// SrcIP implements conn.Endpoint.
func (e *sourceEndpoint) SrcIP() netip.Addr { return e.src }
