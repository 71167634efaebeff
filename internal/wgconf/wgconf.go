// Package wgconf reads a wg-quick server config ([Interface] and [Peer]
// sections) for import: the server's key, port and addresses, and each
// peer's keys, tunnel addresses, routes and name. It checks the syntax
// only; every value is validated by fsm's rules when it is applied.
package wgconf

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Interface is the [Interface] section.
type Interface struct {
	PrivateKey string
	ListenPort int
	// Addresses are the server's tunnel addresses with their prefixes
	// (the pools).
	Addresses []netip.Prefix
}

// Peer is one [Peer] section.
type Peer struct {
	// Name comes from a "# Name = ..." comment in the section (as wg-easy
	// writes them), else it is peer-N (N counts the peers from 1).
	Name         string
	PublicKey    string
	PresharedKey string
	// Addresses are the first host address (/32, /128) of each family in
	// AllowedIPs: the peer's tunnel addresses.
	Addresses []netip.Prefix
	// Routes are the other AllowedIPs: networks behind the peer.
	Routes []netip.Prefix
	// Line is where the section starts, for error messages.
	Line int
}

// Config is a parsed server config.
type Config struct {
	Interface Interface
	Peers     []Peer
}

// Parse reads a wg-quick server config.
func Parse(r io.Reader) (*Config, error) {
	c := &Config{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	section, n := "", 0
	var peer *Peer
	finish := func() {
		if peer != nil {
			if peer.Name == "" {
				peer.Name = fmt.Sprintf("peer-%d", len(c.Peers)+1)
			}
			c.Peers = append(c.Peers, *peer)
			peer = nil
		}
	}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimLeft(line, "#")), "="); ok && peer != nil &&
				strings.EqualFold(strings.TrimSpace(k), "name") {
				peer.Name = strings.TrimSpace(v)
			}
			continue
		}
		if strings.HasPrefix(line, "[") {
			finish()
			section = strings.ToLower(strings.Trim(line, "[] \t"))
			switch section {
			case "interface":
			case "peer":
				peer = &Peer{Line: n}
			default:
				return nil, fmt.Errorf("line %d: unknown section %s", n, line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want Key = Value", n)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if i := strings.Index(v, "#"); i >= 0 && k != "privatekey" && k != "publickey" && k != "presharedkey" {
			v = strings.TrimSpace(v[:i])
		}
		var err error
		switch section {
		case "interface":
			err = c.Interface.set(k, v)
		case "peer":
			err = peer.set(k, v)
		default:
			err = fmt.Errorf("%s outside a section", k)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	finish()
	return c, nil
}

func (i *Interface) set(k, v string) error {
	switch k {
	case "privatekey":
		i.PrivateKey = v
	case "listenport":
		p, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("listen port %q: %w", v, err)
		}
		i.ListenPort = p
	case "address":
		for _, s := range splitList(v) {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("address %q: %w", s, err)
			}
			i.Addresses = append(i.Addresses, p)
		}
	}
	// Other keys (DNS, MTU, PostUp, Table, ...) are wg-quick's own.
	return nil
}

func (p *Peer) set(k, v string) error {
	switch k {
	case "publickey":
		p.PublicKey = v
	case "presharedkey":
		p.PresharedKey = v
	case "allowedips":
		var have4, have6 bool
		for _, s := range splitList(v) {
			pf, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("allowed IPs %q: %w", s, err)
			}
			switch {
			case pf.IsSingleIP() && pf.Addr().Is4() && !have4:
				have4 = true
				p.Addresses = append(p.Addresses, pf)
			case pf.IsSingleIP() && pf.Addr().Is6() && !have6:
				have6 = true
				p.Addresses = append(p.Addresses, pf)
			default:
				p.Routes = append(p.Routes, pf)
			}
		}
	}
	// Endpoint and PersistentKeepalive are the client's business.
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
