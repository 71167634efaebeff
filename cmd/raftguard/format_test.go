package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestFormatPeers(t *testing.T) {
	hs := now.Add(-90 * time.Second)
	peers := []httpapi.PeerView{
		{Name: "laptop", PublicKey: "PUB1", Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/32")}, Enabled: true, Endpoint: "198.51.100.7:4000", LatestHandshake: &hs},
		{Name: "phone", PublicKey: "PUB2", Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.3/32"), netip.MustParsePrefix("fd00::3/128")}},
	}
	got := formatPeersAt(peers, now)
	want := "" +
		"NAME    ADDRESSES                 ENABLED  ENDPOINT           HANDSHAKE  PUBLIC KEY\n" +
		"laptop  10.99.0.2/32              yes      198.51.100.7:4000  1m30s ago  PUB1\n" +
		"phone   10.99.0.3/32,fd00::3/128  no       -                  never      PUB2\n"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if formatPeersAt(nil, now) != "no peers\n" {
		t.Fatal("empty list")
	}
}

func TestFormatPeerHidesNothingSecret(t *testing.T) {
	out := formatPeerAt(httpapi.PeerView{Name: "x", PublicKey: "PUB", HasPresharedKey: true, RxBytes: 10, TxBytes: 20}, now)
	for _, want := range []string{"name:", "x", "preshared key:     yes", "10 B received, 20 B sent", "never"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestFormatCreatedPeer(t *testing.T) {
	stdout, note := formatCreatedPeer(httpapi.CreatePeerResponse{PeerView: httpapi.PeerView{Name: "a", Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/32")}}, Config: "[Interface]\n"})
	if stdout != "[Interface]\n" || !strings.Contains(note, "only copy of the private key") {
		t.Fatalf("stdout %q note %q", stdout, note)
	}
	stdout, note = formatCreatedPeer(httpapi.CreatePeerResponse{PeerView: httpapi.PeerView{Name: "a"}})
	if stdout != "peer a: -\n" || note != "" {
		t.Fatalf("stdout %q note %q", stdout, note)
	}
}

func TestFormatCluster(t *testing.T) {
	st := httpapi.ClusterStatus{LeaderID: "n1", Term: 4, VIPHolder: "n1", Nodes: []httpapi.ClusterNode{
		{NodeStatus: httpapi.NodeStatus{NodeID: "n1", Role: "leader", RaftAddr: "192.0.2.1:7000", APIAddr: "192.0.2.1:7443", LastIndex: 9, AppliedIndex: 9, VIPHolder: true, InterfaceUp: true, Dataplane: "userspace", StateDigest: "3f1c9a0e6b2d4c8f1a7e"}, Voter: true, Reachable: true},
		{NodeStatus: httpapi.NodeStatus{NodeID: "n2", RaftAddr: "192.0.2.2:7000"}, Voter: true},
	}}
	got := formatCluster(st)
	for _, want := range []string{"leader: n1   term: 4   VIP holder: n1", "n1    leader", "n2    unreachable", "up", "3f1c9a0e6b2d\n", "STATE"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestQRTextDropsComments(t *testing.T) {
	if got := qrText("# c\n[Interface]\nA = 1\n"); got != "[Interface]\nA = 1\n" {
		t.Fatalf("%q", got)
	}
}

// TestReadmeMatchesServerFlags keeps the README's configuration reference
// and `raftguard server --help` in step.
func TestReadmeMatchesServerFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "## Configuration reference")
	if start < 0 {
		t.Fatal("README has no configuration reference")
	}
	section = section[start:]
	if end := strings.Index(section[3:], "\n## "); end > 0 {
		section = section[:end+3]
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)`").FindAllStringSubmatch(section, -1) {
		documented[m[1]] = true
	}
	flags := map[string]bool{}
	for _, f := range serverFlags() {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue // hidden: for tests and debugging, not configuration
		}
		name := f.Names()[0]
		flags[name] = true
		if !documented[name] {
			t.Errorf("flag --%s is not in the README's configuration reference", name)
		}
		if ef, ok := f.(interface{ GetEnvVars() []string }); ok {
			if env := ef.GetEnvVars(); len(env) != 1 || env[0] != "RAFTGUARD_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")) {
				t.Errorf("flag --%s reads %v", name, env)
			}
		}
	}
	for name := range documented {
		if !flags[name] {
			t.Errorf("README documents --%s, which `raftguard server` does not have", name)
		}
	}
}

func TestFlagsFirst(t *testing.T) {
	app := newApp()
	for _, c := range []struct{ in, want string }{
		{"raftguard peer add laptop --qr --ip 10.99.0.9", "raftguard peer add --qr --ip 10.99.0.9 laptop"},
		{"raftguard --data-dir /x peer add desk --public-key K", "raftguard --data-dir /x peer add --public-key K desk"},
		{"raftguard -o json peer list", "raftguard -o json peer list"},
		{"raftguard cluster snapshot save f.snap", "raftguard cluster snapshot save f.snap"},
		{"raftguard peer show -- -odd", "raftguard peer show -- -odd"},
		{"raftguard cluster status -o json", "raftguard -o json cluster status"},
		{"raftguard peer add laptop --data-dir /x --qr", "raftguard --data-dir /x peer add --qr laptop"},
		{"raftguard cluster recover --data-dir /d --servers a=b:1", "raftguard cluster recover --data-dir /d --servers a=b:1"},
	} {
		if got := strings.Join(flagsFirst(app, strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestExpiryArg(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"30d":                  "2026-12-31T00:00:00Z",
		"2w":                   "2026-12-15T00:00:00Z",
		"90m":                  "2026-12-01T01:30:00Z",
		"never":                "never",
		"2027-01-01T00:00:00Z": "2027-01-01T00:00:00Z",
	} {
		if got, err := expiryArg(in, now); err != nil || got != want {
			t.Errorf("expiryArg(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "soon", "-3d", "0h", "d"} {
		if got, err := expiryArg(bad, now); err == nil {
			t.Errorf("expiryArg(%q) = %q, want an error", bad, got)
		}
	}
}

func TestImportRequest(t *testing.T) {
	f := filepath.Join(t.TempDir(), "wg0.conf")
	conf := "[Interface]\nPrivateKey = x\nAddress = 10.8.0.1/24\n\n[Peer]\n# Name = alice\nPublicKey = A=\nPresharedKey = P=\nAllowedIPs = 10.8.0.2/32, 192.168.9.0/24\n\n[Peer]\nPublicKey = B=\nAllowedIPs = 10.8.0.3/32\n"
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	req, err := importRequest(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Peers) != 2 {
		t.Fatalf("%d peers", len(req.Peers))
	}
	a, b := req.Peers[0], req.Peers[1]
	if a.Name != "alice" || *a.PublicKey != "A=" || *a.PresharedKey != "P=" || fmt.Sprint(a.Addresses, a.AllowedIPs) != "[10.8.0.2/32] [192.168.9.0/24]" {
		t.Fatalf("alice: %+v", a)
	}
	if b.Name != "peer-2" || *b.PresharedKey != "" || fmt.Sprint(b.Addresses) != "[10.8.0.3/32]" {
		t.Fatalf("peer-2: %+v", b)
	}
}
