package fsm

import "net/netip"

// prefixTrie is a binary trie of prefixes, one per address family, that
// answers "does this prefix overlap any stored one, and whose is it" in time
// proportional to the prefix length, whatever the number stored.
type prefixTrie struct {
	v4, v6 *trieNode
}

type trieNode struct {
	child [2]*trieNode
	owner string // set when a prefix ends here
	term  bool
	count int // prefixes stored in this subtree, this node included
}

func bitAt(a netip.Addr, i int) int {
	b := a.As16()
	if a.Is4() {
		i += 96
	}
	return int(b[i/8]>>(7-uint(i%8))) & 1
}

func (t *prefixTrie) root(p netip.Prefix, create bool) *trieNode {
	r := &t.v6
	if p.Addr().Is4() {
		r = &t.v4
	}
	if *r == nil && create {
		*r = &trieNode{}
	}
	return *r
}

// insert stores p for owner. p must not overlap a stored prefix.
func (t *prefixTrie) insert(p netip.Prefix, owner string) {
	n := t.root(p, true)
	n.count++
	for i := 0; i < p.Bits(); i++ {
		b := bitAt(p.Addr(), i)
		if n.child[b] == nil {
			n.child[b] = &trieNode{}
		}
		n = n.child[b]
		n.count++
	}
	n.term, n.owner = true, owner
}

// remove deletes p (stored earlier with insert).
func (t *prefixTrie) remove(p netip.Prefix) {
	n := t.root(p, false)
	if n == nil || !t.has(p) {
		return
	}
	n.count--
	for i := 0; i < p.Bits(); i++ {
		b := bitAt(p.Addr(), i)
		c := n.child[b]
		c.count--
		if c.count == 0 {
			n.child[b] = nil
			return
		}
		n = c
	}
	n.term, n.owner = false, ""
}

func (t *prefixTrie) has(p netip.Prefix) bool {
	n := t.root(p, false)
	for i := 0; n != nil && i < p.Bits(); i++ {
		n = n.child[bitAt(p.Addr(), i)]
	}
	return n != nil && n.term
}

// overlap returns the owner and prefix of a stored prefix that contains p or
// lies inside it.
func (t *prefixTrie) overlap(p netip.Prefix) (string, netip.Prefix, bool) {
	n := t.root(p, false)
	if n == nil {
		return "", netip.Prefix{}, false
	}
	for i := 0; ; i++ {
		if n.term {
			q, _ := p.Addr().Prefix(i)
			return n.owner, q, true
		}
		if i == p.Bits() {
			break
		}
		n = n.child[bitAt(p.Addr(), i)]
		if n == nil {
			return "", netip.Prefix{}, false
		}
	}
	// Something below p: walk down to any stored prefix to name it.
	b := p.Addr().As16()
	depth := p.Bits()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	for !n.term {
		next := 0
		if n.child[0] == nil {
			next = 1
		}
		if next == 1 {
			j := off + depth
			b[j/8] |= 1 << (7 - uint(j%8))
		}
		n = n.child[next]
		depth++
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return n.owner, netip.PrefixFrom(a, depth), true
}
