package fsm

import (
	"container/heap"
	"fmt"
	"net/netip"
)

// pool hands out the lowest free host address of a prefix. The set of used
// addresses lives in State.addrOwner; the pool keeps only derived indexes:
// next (every address below it is used, reserved or in free) and a min-heap
// of freed addresses below next. Both can be rebuilt from the used set, so
// the address chosen is a pure function of the replicated state.
type pool struct {
	prefix netip.Prefix
	first  netip.Addr // first assignable host (after the server address)
	last   netip.Addr // last assignable host (before the IPv4 broadcast)
	server netip.Addr
	next   netip.Addr
	free   addrHeap
	size   uint64 // assignable addresses, capped at 1<<63
}

// minPoolHosts: a pool must leave room for the server and at least one peer.
func newPool(p netip.Prefix) (*pool, error) {
	if err := CheckPrefix(p); err != nil {
		return nil, err
	}
	bits := p.Addr().BitLen() - p.Bits()
	if bits < 2 {
		return nil, fmt.Errorf("%w: pool %s is too small (at most /%d)", ErrInvalid, p, p.Addr().BitLen()-2)
	}
	network := p.Addr()
	server := network.Next()
	last := lastAddr(p)
	if p.Addr().Is4() {
		last = last.Prev() // broadcast
	}
	pl := &pool{prefix: p, server: server, first: server.Next(), last: last}
	pl.next = pl.first
	switch {
	case bits >= 63:
		pl.size = 1 << 63
	case p.Addr().Is4():
		pl.size = 1<<bits - 3
	default:
		pl.size = 1<<bits - 2
	}
	return pl, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	start := 0
	if p.Addr().Is4() {
		start = 12
	}
	hostBits := p.Addr().BitLen() - p.Bits()
	for i := 15; i >= start && hostBits > 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// check says why a could not be a peer address of this pool, or nil.
func (pl *pool) check(a netip.Addr) error {
	switch {
	case !pl.prefix.Contains(a):
		return fmt.Errorf("%w: %s is outside the pool %s", ErrInvalid, a, pl.prefix)
	case a == pl.prefix.Addr():
		return fmt.Errorf("%w: %s is the pool's network address", ErrInvalid, a)
	case a == pl.server:
		return fmt.Errorf("%w: %s is the server's own address", ErrAddressInUse, a)
	case a.Compare(pl.last) > 0:
		return fmt.Errorf("%w: %s is the pool's broadcast address", ErrInvalid, a)
	}
	return nil
}

// alloc returns the lowest address not in used, or ErrPoolExhausted.
func (pl *pool) alloc(used map[netip.Addr]string) (netip.Addr, error) {
	for pl.free.Len() > 0 {
		a := heap.Pop(&pl.free).(netip.Addr)
		if _, taken := used[a]; !taken {
			return a, nil
		}
	}
	for pl.next.IsValid() && pl.next.Compare(pl.last) <= 0 {
		a := pl.next
		pl.next = a.Next()
		if _, taken := used[a]; !taken {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: no free address in %s", ErrPoolExhausted, pl.prefix)
}

// release makes a (no longer in used) available again.
func (pl *pool) release(a netip.Addr) {
	if pl.next.IsValid() && a.Compare(pl.next) >= 0 {
		return // next will reach it
	}
	heap.Push(&pl.free, a)
}

// reset rebuilds the derived indexes from the used set.
func (pl *pool) reset(used map[netip.Addr]string) {
	pl.free = pl.free[:0]
	pl.next = pl.first
	for pl.next.IsValid() && pl.next.Compare(pl.last) <= 0 {
		if _, taken := used[pl.next]; !taken {
			break
		}
		pl.next = pl.next.Next()
	}
}

type addrHeap []netip.Addr

func (h addrHeap) Len() int           { return len(h) }
func (h addrHeap) Less(i, j int) bool { return h[i].Less(h[j]) }
func (h addrHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *addrHeap) Push(x any)        { *h = append(*h, x.(netip.Addr)) }
func (h *addrHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
