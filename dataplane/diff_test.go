package dataplane

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// testKey returns a fresh private key (a test fails if it cannot).
func testKey(t testing.TB) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testPeer returns a peer with a fresh public key and one /32 address.
func testPeer(t testing.TB, i int) Peer {
	t.Helper()
	return Peer{
		PublicKey:  testKey(t).PublicKey().String(),
		AllowedIPs: []netip.Prefix{peerAddr(i)},
	}
}

// peerAddr is peer i's tunnel address: 198.51.100.(i+1)/32 for the first
// ones, fd00:99::i/128 beyond.
func peerAddr(i int) netip.Prefix {
	if i < 250 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 32)
	}
	var a [16]byte
	a[0], a[2] = 0xfd, 0x99
	binary.BigEndian.PutUint32(a[12:], uint32(i))
	return netip.PrefixFrom(netip.AddrFrom16(a), 128)
}

func mustNormalize(t *testing.T, cfg Config) *wanted {
	t.Helper()
	w, err := normalize(cfg)
	if err != nil {
		t.Fatalf("normalize: %v", err)
	}
	return w
}

func hexKey(k string) string {
	key, err := wgtypes.ParseKey(k)
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(key[:])
}

func TestNormalizeRejects(t *testing.T) {
	priv := testKey(t).String()
	psk := testKey(t).String()
	base := func() Config {
		return Config{PrivateKey: priv, ListenPort: 51820, Peers: []Peer{testPeer(t, 1)}}
	}
	cases := map[string]func(*Config){
		"bad private key":    func(c *Config) { c.PrivateKey = priv[:20] },
		"zero private key":   func(c *Config) { c.PrivateKey = wgtypes.Key{}.String() },
		"port 0":             func(c *Config) { c.ListenPort = 0 },
		"port too big":       func(c *Config) { c.ListenPort = 70000 },
		"MTU too small":      func(c *Config) { c.MTU = 10 },
		"bad address":        func(c *Config) { c.Addresses = []netip.Prefix{{}} },
		"bad public key":     func(c *Config) { c.Peers[0].PublicKey = "nope" },
		"bad preshared key":  func(c *Config) { c.Peers[0].PresharedKey = psk[:30] },
		"duplicate peer":     func(c *Config) { c.Peers = append(c.Peers, c.Peers[0]) },
		"own key as peer":    func(c *Config) { c.Peers[0].PublicKey = testKeyPublic(priv) },
		"bad allowed IP":     func(c *Config) { c.Peers[0].AllowedIPs = []netip.Prefix{{}} },
		"endpoint no port":   func(c *Config) { c.Peers[0].Endpoint = netip.MustParseAddrPort("192.0.2.1:0") },
		"unspecified source": func(c *Config) { c.SourceAddrs = []netip.Addr{netip.IPv4Unspecified()} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := base()
			mutate(&cfg)
			_, err := normalize(cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), priv) || strings.Contains(err.Error(), psk) ||
				strings.Contains(err.Error(), priv[:20]) || strings.Contains(err.Error(), psk[:30]) {
				t.Fatalf("error holds a secret key")
			}
		})
	}
}

func testKeyPublic(priv string) string {
	k, err := wgtypes.ParseKey(priv)
	if err != nil {
		panic(err)
	}
	return k.PublicKey().String()
}

func TestDiff(t *testing.T) {
	priv := testKey(t).String()
	p1, p2, p3 := testPeer(t, 1), testPeer(t, 2), testPeer(t, 3)
	p1.Endpoint = netip.MustParseAddrPort("203.0.113.7:40000")
	p2.PresharedKey = testKey(t).String()
	p2.AllowedIPs = append(p2.AllowedIPs, netip.MustParsePrefix("203.0.113.128/25"), netip.MustParsePrefix("2001:db8:1::5/48"))
	cfg := Config{
		PrivateKey:  priv,
		ListenPort:  51820,
		Addresses:   []netip.Prefix{netip.MustParsePrefix("fd00::1/64"), netip.MustParsePrefix("198.51.100.1/24")},
		Peers:       []Peer{p1, p2},
		SourceAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.10")},
	}
	w1 := mustNormalize(t, cfg)

	t.Run("initial", func(t *testing.T) {
		p := diffState(nil, &w1.dev)
		if p.privateKey == nil || p.listenPort != 51820 || !p.sourceAddrs {
			t.Fatalf("plan = %+v, want private key, port and sources", p)
		}
		if r, u, c := p.counts(); r != 0 || u != 0 || c != 2 {
			t.Fatalf("counts = %d/%d/%d, want 0/0/2", r, u, c)
		}
		text := uapiText(p)
		for _, want := range []string{
			"private_key=" + hexKey(priv) + "\n",
			"listen_port=51820\n",
			"public_key=" + hexKey(p1.PublicKey) + "\nreplace_allowed_ips=true\nendpoint=203.0.113.7:40000\nallowed_ip=198.51.100.2/32\n",
			"preshared_key=" + hexKey(p2.PresharedKey) + "\n",
			"allowed_ip=2001:db8:1::/48\n", // masked
		} {
			if !strings.Contains(text, want) {
				t.Errorf("uapi text lacks %q", want)
			}
		}
		if strings.Contains(text, "replace_peers") {
			t.Error("uapi text uses replace_peers")
		}
	})

	t.Run("identical", func(t *testing.T) {
		again := mustNormalize(t, cfg)
		if p := diffState(&w1.dev, &again.dev); !p.empty() {
			t.Fatalf("plan for an identical config = %+v, want empty", p)
		}
	})

	t.Run("order of peers and prefixes does not matter", func(t *testing.T) {
		c := cfg
		c.Peers = []Peer{p2, p1}
		q := p2
		q.AllowedIPs = slices.Clone(p2.AllowedIPs)
		slices.Reverse(q.AllowedIPs)
		c.Peers[0] = q
		if p := diffState(&w1.dev, &mustNormalize(t, c).dev); !p.empty() {
			t.Fatalf("plan = %+v, want empty", p)
		}
	})

	t.Run("endpoint of an existing peer is not touched", func(t *testing.T) {
		c := cfg
		q := p1
		q.Endpoint = netip.MustParseAddrPort("203.0.113.9:1")
		c.Peers = []Peer{q, p2}
		if p := diffState(&w1.dev, &mustNormalize(t, c).dev); !p.empty() {
			t.Fatalf("plan = %+v, want empty", p)
		}
	})

	t.Run("add one peer", func(t *testing.T) {
		c := cfg
		c.Peers = []Peer{p1, p2, p3}
		p := diffState(&w1.dev, &mustNormalize(t, c).dev)
		if p.privateKey != nil || p.listenPort != 0 || p.sourceAddrs || len(p.peers) != 1 || p.peers[0].kind != opCreate {
			t.Fatalf("plan = %+v, want one creation", p)
		}
		want := "public_key=" + hexKey(p3.PublicKey) + "\nreplace_allowed_ips=true\nallowed_ip=198.51.100.4/32\n"
		if got := uapiText(p); got != want {
			t.Fatalf("uapi text = %q, want %q", got, want)
		}
	})

	t.Run("remove one peer", func(t *testing.T) {
		c := cfg
		c.Peers = []Peer{p2}
		p := diffState(&w1.dev, &mustNormalize(t, c).dev)
		want := "public_key=" + hexKey(p1.PublicKey) + "\nremove=true\n"
		if got := uapiText(p); got != want {
			t.Fatalf("uapi text = %q, want %q", got, want)
		}
	})

	t.Run("change allowed IPs and preshared key", func(t *testing.T) {
		c := cfg
		q := p2
		q.PresharedKey = ""
		q.AllowedIPs = []netip.Prefix{p2.AllowedIPs[0], netip.MustParsePrefix("203.0.113.0/26")}
		c.Peers = []Peer{p1, q}
		p := diffState(&w1.dev, &mustNormalize(t, c).dev)
		if len(p.peers) != 1 || p.peers[0].kind != opUpdate {
			t.Fatalf("plan = %+v, want one update", p)
		}
		want := "public_key=" + hexKey(p2.PublicKey) + "\nupdate_only=true\n" +
			"preshared_key=" + strings.Repeat("0", 64) + "\n" +
			"allowed_ip=-203.0.113.128/25\nallowed_ip=-2001:db8:1::/48\nallowed_ip=203.0.113.0/26\n"
		if got := uapiText(p); got != want {
			t.Fatalf("uapi text = %q, want %q", got, want)
		}
		op := p.peers[0]
		if !op.setIPs || len(op.allowedIPs) != 2 {
			t.Fatalf("op = %+v, want the whole new list for the kernel's replace", op)
		}
	})

	t.Run("device settings", func(t *testing.T) {
		c := cfg
		c.PrivateKey = testKey(t).String()
		c.ListenPort = 51821
		c.SourceAddrs = []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
		p := diffState(&w1.dev, &mustNormalize(t, c).dev)
		if p.privateKey == nil || p.listenPort != 51821 || !p.sourceAddrs || len(p.peers) != 0 {
			t.Fatalf("plan = %+v", p)
		}
		if got := uapiText(p); !strings.HasSuffix(got, "listen_port=51821\n") || strings.Count(got, "\n") != 2 {
			t.Fatalf("uapi text = %q", got)
		}
	})

	t.Run("interface addresses and MTU are canonical", func(t *testing.T) {
		if !slices.Equal(w1.addresses, []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("fd00::1/64")}) {
			t.Fatalf("addresses = %v", w1.addresses)
		}
		if w1.mtu != DefaultMTU {
			t.Fatalf("mtu = %d, want default %d", w1.mtu, DefaultMTU)
		}
	})
}

func TestPrefixDiff(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return sortPrefixes(out)
	}
	add, del := prefixDiff(pp("192.0.2.0/24", "192.0.2.0/25", "2001:db8::/32"), pp("192.0.2.0/25", "198.51.100.0/24", "2001:db8::/48"))
	if want := pp("198.51.100.0/24", "2001:db8::/48"); !slices.Equal(add, want) {
		t.Errorf("add = %v, want %v", add, want)
	}
	if want := pp("192.0.2.0/24", "2001:db8::/32"); !slices.Equal(del, want) {
		t.Errorf("del = %v, want %v", del, want)
	}
}

func TestParseUAPI(t *testing.T) {
	priv, pub, psk := testKey(t), testKey(t).PublicKey(), testKey(t)
	text := "private_key=" + hex.EncodeToString(priv[:]) + "\nlisten_port=51820\n" +
		"public_key=" + hex.EncodeToString(pub[:]) + "\npreshared_key=" + hex.EncodeToString(psk[:]) + "\n" +
		"protocol_version=1\nendpoint=[2001:db8::2]:4000\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\n" +
		"tx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=0\nallowed_ip=198.51.100.2/32\nallowed_ip=fd00::2/128\nerrno=0\n\n"
	d, err := parseUAPI(text)
	if err != nil {
		t.Fatal(err)
	}
	if d.dev.privateKey != priv || d.dev.listenPort != 51820 || len(d.dev.peers) != 1 || d.dev.peers[pub].psk != psk {
		t.Fatalf("device state not parsed: port %d, %d peers", d.dev.listenPort, len(d.dev.peers))
	}
	if got := d.dev.peers[pub].allowedIPs; len(got) != 2 {
		t.Fatalf("allowed IPs = %v", got)
	}
	s := d.stats[0]
	if s.PublicKey != pub.String() || s.Endpoint != netip.MustParseAddrPort("[2001:db8::2]:4000") ||
		s.LastHandshake.Unix() != 1700000000 || s.TxBytes != 10 || s.RxBytes != 20 {
		t.Fatalf("stats = %+v", s)
	}
	if _, err := parseUAPI("private_key=" + hex.EncodeToString(priv[:5]) + "\n"); err == nil || strings.Contains(err.Error(), hex.EncodeToString(priv[:5])) {
		t.Fatalf("bad key: err = %v (want an error without the value)", err)
	}
}

// BenchmarkDiff measures what Set computes before touching the device:
// validating a Config of 10,000 peers and diffing it with the last one.
func BenchmarkDiff(b *testing.B) {
	const many = 10000
	peers := make([]Peer, many+1)
	for i := range peers {
		peers[i] = testPeer(b, i)
	}
	cfg := Config{PrivateKey: testKey(b).String(), ListenPort: 51820, Peers: peers[:many]}
	w, err := normalize(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Peers = peers
	for b.Loop() {
		w2, err := normalize(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if p := diffState(&w.dev, &w2.dev); len(p.peers) != 1 {
			b.Fatalf("%d peer ops", len(p.peers))
		}
	}
}
