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
	"os"
	"strconv"
	"strings"
	"unicode"
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
	// Name comes from a name comment (see Parse), made a valid peer name
	// (other characters become '-', at most 64 bytes, a suffix -2, -3 ...
	// when taken); else it is peer-N (N counts the peers from 1).
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

// ReadFile parses the wg-quick server config in file; errors name the file.
func ReadFile(file string) (*Config, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// Parse reads a wg-quick server config. A peer's name comes from a
// comment as the tools that manage such files write it:
//
//	# Name = alice        (or "# Name: alice")
//	# Client: alice (id)  (wg-easy)
//	### Client alice      (wireguard-install)
//	### begin alice ###   (PiVPN)
//
// A name comment belongs to the [Peer] header that follows it with only
// comments or blank lines between them; else to the [Peer] section it is
// written in.
func Parse(r io.Reader) (*Config, error) {
	c := &Config{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	section, n := "", 0
	var peer *Peer
	var pending string // a name comment not yet followed by a key line
	finish := func() {
		if peer != nil {
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
			if name, ok := nameComment(line); ok {
				pending = name
			}
			continue
		}
		if strings.HasPrefix(line, "[") {
			finish()
			section = strings.ToLower(strings.Trim(line, "[] \t"))
			switch section {
			case "interface":
				pending = ""
			case "peer":
				peer = &Peer{Line: n, Name: pending}
				pending = ""
			default:
				return nil, fmt.Errorf("line %d: unknown section %s", n, line)
			}
			continue
		}
		if pending != "" && peer != nil && peer.Name == "" {
			peer.Name = pending
		}
		pending = ""
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(strings.TrimSpace(k), " \t") || strings.TrimSpace(k) == "" {
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
	if pending != "" && peer != nil && peer.Name == "" {
		peer.Name = pending
	}
	finish()
	nameAll(c.Peers)
	return c, nil
}

// nameComment returns the peer name a comment line gives, if any.
func nameComment(line string) (string, bool) {
	text := strings.TrimSpace(strings.TrimLeft(line, "#"))
	if k, v, ok := strings.Cut(text, "="); ok && strings.EqualFold(strings.TrimSpace(k), "name") {
		return strings.TrimSpace(v), strings.TrimSpace(v) != ""
	}
	if k, v, ok := strings.Cut(text, ":"); ok {
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "name":
			return strings.TrimSpace(v), strings.TrimSpace(v) != ""
		case "client":
			// wg-easy: "# Client: NAME (ID)".
			v = strings.TrimSpace(v)
			if i := strings.LastIndex(v, " ("); i > 0 && strings.HasSuffix(v, ")") {
				v = v[:i]
			}
			return strings.TrimSpace(v), strings.TrimSpace(v) != ""
		}
	}
	if strings.HasPrefix(line, "###") {
		fields := strings.Fields(strings.Trim(text, "# "))
		if len(fields) == 2 && (fields[0] == "Client" || fields[0] == "begin") {
			return fields[1], true
		}
	}
	return "", false
}

// maxName is fsm.MaxNameLen (wgconf imports nothing of the project).
const maxName = 64

// nameAll turns every peer's name into a valid, unique peer name, or
// peer-N when it has none.
func nameAll(peers []Peer) {
	taken := map[string]bool{}
	for i := range peers {
		name := cleanName(peers[i].Name)
		if name == "" {
			name = fmt.Sprintf("peer-%d", i+1)
		}
		base := name
		for k := 2; taken[name]; k++ {
			suffix := fmt.Sprintf("-%d", k)
			name = base[:min(len(base), maxName-len(suffix))] + suffix
		}
		taken[name] = true
		peers[i].Name = name
	}
}

// cleanName keeps letters, digits and . _ - @ +; any other run of
// characters becomes one '-'; the name starts with a letter or digit.
func cleanName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		ok := r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-@+", r))
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimLeft(b.String(), "._-@+")
	out = strings.TrimRight(out[:min(len(out), maxName)], "-")
	return out
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
		for _, s := range SplitList(v) {
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
		for _, s := range SplitList(v) {
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

// SplitList splits a wg-quick list value (Address, AllowedIPs, DNS) at its
// commas, trimming spaces and dropping empty items.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
