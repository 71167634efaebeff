package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/vip"
	awsvip "github.com/raftguard/raftguard/vip/aws"
	"github.com/raftguard/raftguard/vip/hetzner"
)

const cloudTestToken = "hc-agent-test-token-never-logged"

// TestHetznerModeFromNodeSettings: the hetzner mode is built from the
// node-local flags; without a usable token file the node reports the mode
// as broken (and why) instead of failing, and the token never reaches the
// log.
func TestHetznerModeFromNodeSettings(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "hcloud.token")
	if err := os.WriteFile(tokFile, []byte(cloudTestToken+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{DataDir: dir, Logger: l, VIPModes: VIPModeFlags{HetznerServerID: 7}}, log: l, vipIface: "eth0"}
	if err := a.resolveNode(); err != nil {
		t.Fatal(err)
	}
	if a.node.HetznerServerID != 7 {
		t.Fatalf("server id %d", a.node.HetznerServerID)
	}

	_, _, m, _ := a.newMode(fsm.VIPModeHetzner, nil)
	if b, ok := m.(vip.Broken); !ok || !errors.Is(b.Err, hetzner.ErrNoToken) {
		t.Fatalf("no token file: %#v", m)
	}
	a.node.HetznerTokenFile = tokFile
	_, _, m, _ = a.newMode(fsm.VIPModeHetzner, nil)
	if b, ok := m.(vip.Broken); !ok || !errors.Is(b.Err, hetzner.ErrTokenFile) || !strings.Contains(b.Err.Error(), "chmod 600") {
		t.Fatalf("a token file others can read: %#v", m)
	}
	if err := os.Chmod(tokFile, 0o600); err != nil {
		t.Fatal(err)
	}
	local, iface, m, stop := a.newMode(fsm.VIPModeHetzner, nil)
	if _, ok := m.(*hetzner.Mode); !ok || stop != nil || iface != "eth0" {
		t.Fatalf("with a token: %T %q", m, iface)
	}
	if _, ok := local.(vip.HostRoutes); !ok {
		t.Fatalf("local address %T: the floating IP is held as a host address", local)
	}
	if strings.Contains(buf.String(), cloudTestToken) {
		t.Fatalf("the token is in the log:\n%s", buf.String())
	}
}

// TestAWSModeFromNodeSettings: the aws mode is built from the node-local
// flags, stored in the data dir; a malformed one makes the mode broken
// (and says which flag), and the VIP's local address is the NIC's, as in
// arp mode.
func TestAWSModeFromNodeSettings(t *testing.T) {
	l := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	a := &Agent{cfg: Config{DataDir: dir, Logger: l, VIPModes: VIPModeFlags{AWSRegion: "eu-central-1", AWSInstanceID: "web-1", AWSEIP: "eipalloc-0123"}}, log: l, vipIface: "eth0"}
	if err := a.resolveNode(); err != nil {
		t.Fatal(err)
	}
	if a.node.AWSRegion != "eu-central-1" || a.node.AWSEIP != "eipalloc-0123" {
		t.Fatalf("node settings: %+v", a.node)
	}
	_, _, m, _ := a.newMode(fsm.VIPModeAWS, nil)
	if b, ok := m.(vip.Broken); !ok || !errors.Is(b.Err, awsvip.ErrInvalid) || !strings.Contains(b.Err.Error(), "--aws-instance-id") {
		t.Fatalf("a malformed instance id: %#v", m)
	}
	a.node.AWSInstanceID = "i-0aaaa"
	nic := &vip.Manager{}
	local, iface, m, stop := a.newMode(fsm.VIPModeAWS, nic)
	if _, ok := m.(*awsvip.Mode); !ok || stop != nil || iface != "eth0" || local != vip.Local(nic) {
		t.Fatalf("aws mode: %T %q %T", m, iface, local)
	}
}
