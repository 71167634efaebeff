package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/clientconf"
	"github.com/raftguard/raftguard/internal/pki"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// configLine is one line a client config may hold, in order; optional
// lines may be missing.
type configLine struct {
	re       *regexp.Regexp
	optional bool
}

// clientConfigGrammar is every line ClientConfig writes, in order, and
// nothing else: a value that carried a line break would add a line the
// grammar has no room for.
var clientConfigGrammar = []configLine{
	{re: regexp.MustCompile(`^# raftguard peer [A-Za-z0-9][A-Za-z0-9._@+-]*$`)},
	{re: regexp.MustCompile(`^\[Interface\]$`)},
	{re: regexp.MustCompile(`^PrivateKey = (<client private key>|[A-Za-z0-9+/]{43}=)$`)},
	{re: regexp.MustCompile(`^Address = [0-9a-f.:/, ]+$`)},
	{re: regexp.MustCompile(`^DNS = [A-Za-z0-9.:, -]+$`), optional: true},
	{re: regexp.MustCompile(`^MTU = [0-9]+$`), optional: true},
	{re: regexp.MustCompile(`^$`)},
	{re: regexp.MustCompile(`^\[Peer\]$`)},
	{re: regexp.MustCompile(`^PublicKey = [A-Za-z0-9+/]{43}=$`)},
	{re: regexp.MustCompile(`^PresharedKey = (<preshared key given at creation>|[A-Za-z0-9+/]{43}=)$`), optional: true},
	{re: regexp.MustCompile(`^AllowedIPs = [0-9a-f.:/, ]*$`)},
	{re: regexp.MustCompile(`^Endpoint = [A-Za-z0-9.\-\[\]:]+:[0-9]+$`)},
	{re: regexp.MustCompile(`^PersistentKeepalive = [0-9]+$`), optional: true},
}

// checkConfigLines reports the first line of conf that the grammar does not
// allow where it stands.
func checkConfigLines(conf string) (string, bool) {
	lines := strings.Split(strings.TrimSuffix(conf, "\n"), "\n")
	i := 0
	for _, g := range clientConfigGrammar {
		if i < len(lines) && g.re.MatchString(lines[i]) {
			i++
			continue
		}
		if !g.optional {
			if i < len(lines) {
				return lines[i], false
			}
			return "<missing line>", false
		}
	}
	if i != len(lines) {
		return lines[i], false
	}
	return "", true
}

// fuzzSnapshotBase is a valid snapshot with real keys and a real CA.
func fuzzSnapshotBase(tb testing.TB) []byte {
	tb.Helper()
	kp, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := pki.NewCA("fuzz", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		tb.Fatal(err)
	}
	join, err := pki.NewJoinToken(ca.Fingerprint())
	if err != nil {
		tb.Fatal(err)
	}
	f := fsm.New(nil)
	idx := uint64(0)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	must := func(t fsm.CommandType, body any) {
		data, err := fsm.Encode(t, body)
		if err != nil {
			tb.Fatal(err)
		}
		idx++
		if err, ok := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data}).(error); ok {
			tb.Fatalf("%s: %v", t, err)
		}
	}
	must(fsm.CmdInit, fsm.Init{
		Settings: fsm.Settings{
			PrivateKey: kp.Private, PublicKey: kp.Public, ListenPort: 51820,
			Pool: netip.MustParsePrefix("10.99.0.0/24"), Pool6: netip.MustParsePrefix("fd00:99::/64"),
			VIPs:     []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")},
			Endpoint: "vpn.example.com:51820", MTU: 1420, Keepalive: 25, ClientDNS: []string{"192.0.2.53", "corp.example"},
			ClientAllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
		},
		CACertPEM: string(ca.CertPEM), CAKeyPEM: string(ca.KeyPEM), JoinToken: join,
		AdminToken: fsm.AdminToken{ID: "admin", Name: "bootstrap", Hash: pki.HashToken("x")},
		At:         at,
	})
	must(fsm.CmdRegisterNode, fsm.RegisterNode{ID: "n1", RaftAddr: "198.51.100.1:7000", APIAddr: "198.51.100.1:7443", At: at})
	must(fsm.CmdAddPeer, fsm.AddPeer{Name: "alice", PublicKey: fuzzAlicePub, PresharedKey: fuzzAlicePSK, Enabled: true, At: at})
	must(fsm.CmdAddPeer, fsm.AddPeer{Name: "bob", PublicKey: fuzzBobPub, Enabled: false, At: at,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}})
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzSnapshotClientConfig: whatever snapshot file the API would restore,
// every client config rendered from it holds exactly the expected lines
// (no extra keys such as PreUp or PostUp).
func FuzzSnapshotClientConfig(f *testing.F) {
	base := fuzzSnapshotBase(f)
	if err := fsm.ValidateSnapshot(bytes.NewReader(base)); err != nil {
		f.Fatalf("the base snapshot is refused: %v", err)
	}
	f.Add(base)
	for _, r := range [][2]string{
		{`"endpoint":"vpn.example.com:51820"`, `"endpoint":"192.0.2.10:51820\nPostUp = touch owned"`},
		{`"client_dns":["192.0.2.53","corp.example"]`, `"client_dns":["1.1.1.1\nPreUp = id \u003e owned"]`},
		{`"client_dns":["192.0.2.53","corp.example"]`, `"client_dns":["1.1.1.1\u2028PreUp = x"]`},
		{`"name":"alice"`, `"name":"alice\nPostUp = x"`},
		{`"endpoint":"vpn.example.com:51820"`, `"endpoint":"vpn.example.com.:51820"`},
		{`"mtu":1420`, `"mtu":1280`},
		{`"keepalive":25`, `"keepalive":0`},
	} {
		f.Add(bytes.Replace(base, []byte(r[0]), []byte(r[1]), 1))
	}
	f.Fuzz(func(t *testing.T, snap []byte) {
		if fsm.ValidateSnapshot(bytes.NewReader(snap)) != nil {
			return
		}
		st := fsm.New(nil)
		if err := st.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Fatalf("ValidateSnapshot accepted what Restore refuses: %v", err)
		}
		set := st.Settings()
		for _, p := range st.Peers() {
			for _, conf := range []string{
				clientconf.Render(set, p, "", ""),
				clientconf.Render(set, p, fuzzNewPub, fuzzNewPSK),
			} {
				if line, ok := checkConfigLines(conf); !ok {
					b, _ := json.Marshal(line)
					t.Fatalf("peer %q: unexpected config line %s in\n%s", p.Name, b, conf)
				}
			}
		}
	})
}
