package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// importConf is a wg-quick server config with two named peers (one with a
// preshared key and a route behind it) and one without a name.
func importConf(t *testing.T, server wgkey.Pair, address string) (conf string, psk string) {
	t.Helper()
	psk, err := wgkey.Preshared()
	if err != nil {
		t.Fatal(err)
	}
	var pubs []string
	for range 3 {
		kp, err := wgkey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, kp.Public)
	}
	return fmt.Sprintf(`[Interface]
PrivateKey = %s
Address = %s, fd42:42::1/64
ListenPort = 51999
PostUp = iptables -A FORWARD -i wg0 -j ACCEPT

# Client: alice (0f7c)
[Peer]
PublicKey = %s
PresharedKey = %s
AllowedIPs = 10.8.0.2/32, fd42:42::2/128, 192.168.50.0/24

### Client bob
[Peer]
PublicKey = %s
AllowedIPs = 10.8.0.3/32

[Peer]
PublicKey = %s
AllowedIPs = 10.8.0.4/32
`, server.Private, address, pubs[0], psk, pubs[1], pubs[2]), psk
}

// TestBootstrapImport: a bootstrap with --import takes the file's key
// pair, port, pools and peers (with their preshared keys and routes), a
// joining node holds them too, and neither the logs nor the banner show
// a secret.
func TestBootstrapImport(t *testing.T) {
	server, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	conf, psk := importConf(t, server, "10.8.0.1/24")
	file := filepath.Join(t.TempDir(), "wg0.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c := agenttest.New(t)
	cfg := c.Config("n1")
	cfg.Bootstrap = true
	cfg.Cluster = agent.ClusterFlags{VIPs: []string{"192.0.2.10/24"}, Import: file}
	n1 := c.Start(cfg)
	var n2 *agent.Agent
	agenttest.Eventually(t, 10*time.Second, func() error {
		if total, _ := n1.State().PeerCounts(); total != 3 {
			return fmt.Errorf("%d peers", total)
		}
		return nil
	})
	n2 = c.Join("n2", n1, c.JoinToken("n1"))
	agenttest.Eventually(t, 10*time.Second, func() error {
		if total, _ := n2.State().PeerCounts(); total != 3 {
			return fmt.Errorf("n2 holds %d peers", total)
		}
		return nil
	})
	s := n2.State().Settings()
	if s.PrivateKey != server.Private || s.PublicKey != server.Public || s.ListenPort != 51999 ||
		s.Pool.String() != "10.8.0.0/24" || s.Pool6.String() != "fd42:42::/64" || s.Endpoint != "192.0.2.10:51999" {
		t.Fatalf("settings: port %d pools %s %s endpoint %s, key taken: %v", s.ListenPort, s.Pool, s.Pool6, s.Endpoint, s.PrivateKey == server.Private)
	}
	var got []string
	for _, p := range n2.State().Peers() {
		got = append(got, fmt.Sprintf("%s %v %v psk=%v", p.Name, p.Addresses, p.AllowedIPs, p.PresharedKey != ""))
	}
	want := "alice [10.8.0.2/32 fd42:42::2/128] [192.168.50.0/24] psk=true|bob [10.8.0.3/32] [] psk=false|peer-3 [10.8.0.4/32] [] psk=false"
	if strings.Join(got, "|") != want {
		t.Fatalf("peers\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	if p, _ := n2.State().Peer("alice"); p.PresharedKey != psk {
		t.Fatal("alice's preshared key was not kept")
	}
	if _, err := os.Stat(filepath.Join(c.Dirs["n1"], "bootstrap.import")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the pending import is still in the data dir: %v", err)
	}
	if !strings.Contains(c.Banner.String(), server.Public) {
		t.Error("the banner does not name the server's public key")
	}
	for _, secret := range []string{server.Private, psk} {
		if strings.Contains(c.Logs.String(), secret) || strings.Contains(c.Banner.String(), secret) {
			t.Fatal("a secret appears in the logs or the banner")
		}
	}
}

// TestBootstrapImportRefused: a file the cluster's rules refuse stops the
// bootstrap with an error that names the problem and holds no secret, and
// leaves no data dir behind.
func TestBootstrapImportRefused(t *testing.T) {
	server, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	good, psk := importConf(t, server, "10.8.0.1/24")
	for _, tc := range []struct{ name, conf, want string }{
		{"not first host", strings.Replace(good, "10.8.0.1/24", "10.8.0.254/24", 1), "not the first host of 10.8.0.0/24"},
		{"duplicate address", strings.Replace(good, "10.8.0.3/32", "10.8.0.2/32", 1), `peer 2 ("bob")`},
		{"bad preshared key", strings.Replace(good, psk, psk[:20]+"==", 1), `peer 1 ("alice"): preshared_key`},
		{"bad private key", strings.Replace(good, server.Private, server.Private[:40]+"=", 1), "PrivateKey"},
		{"no private key", strings.Replace(good, "PrivateKey = "+server.Private, "", 1), "no PrivateKey"},
		{"route over the VIP", strings.Replace(good, "192.168.50.0/24", "192.0.2.0/24", 1), "covers the VIP"},
		{"malformed", good + "Endpoint\n", "line 21"},
		{"no port", strings.Replace(good, "ListenPort = 51999", "", 1), "--listen-port"},
		{"without --bootstrap", good, "with --bootstrap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "wg0.conf")
			if err := os.WriteFile(file, []byte(tc.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			c := agenttest.New(t)
			cfg := c.Config("n1")
			cfg.Bootstrap = tc.name != "without --bootstrap"
			cfg.Cluster = agent.ClusterFlags{VIPs: []string{"192.0.2.10/24"}, Import: file}
			_, err := agent.Start(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			t.Log(err)
			for _, secret := range []string{server.Private, psk, psk[:20]} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
			if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused import left the data dir %s: %v", cfg.DataDir, err)
			}
		})
	}
}
