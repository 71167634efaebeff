package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
)

// TestVIPModeSetting: --vip-mode at bootstrap is replicated (after the
// init, once the fresh cluster's version allows it), shown in the
// settings, changeable through PATCH and validated by fsm's rules.
func TestVIPModeSetting(t *testing.T) {
	c := agenttest.New(t)
	cfg := c.Config("n1")
	cfg.Bootstrap = true
	cfg.Cluster = agent.ClusterFlags{VIPs: []string{"192.0.2.10/24"}, VIPMode: fsm.VIPModeHook}
	a := c.Start(cfg)
	agenttest.Eventually(t, 10*time.Second, func() error {
		if m := a.State().Settings().Mode(); m != fsm.VIPModeHook {
			return fmt.Errorf("mode %q", m)
		}
		return nil
	})
	if v := a.State().ClusterVersion(); v != fsm.ProtocolVersion {
		t.Fatalf("cluster version %d", v)
	}
	cl := c.Client("n1")
	if code, body, _ := cl.Call(http.MethodGet, "/v1/cluster/settings", nil); code != http.StatusOK || !strings.Contains(string(body), `"vip_mode": "hook"`) {
		t.Fatalf("GET: %d %s", code, body)
	}
	if code, body, _ := cl.Call(http.MethodPatch, "/v1/cluster/settings", []byte(`{"vip_mode":"l2"}`)); code != http.StatusBadRequest {
		t.Fatalf("bad mode: %d %s", code, body)
	}
	if code, body, _ := cl.Call(http.MethodPatch, "/v1/cluster/settings", []byte(`{"vip_mode":"arp"}`)); code != http.StatusOK || !strings.Contains(string(body), `"vip_mode": "arp"`) {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	if s := a.State().Settings(); s.VIPMode != "" || s.Mode() != fsm.VIPModeARP {
		t.Fatalf("arp stored as %q", s.VIPMode)
	}
}

func TestVIPModeBootstrapRefusesUnknownMode(t *testing.T) {
	c := agenttest.New(t)
	cfg := c.Config("n1")
	cfg.Bootstrap = true
	cfg.Cluster = agent.ClusterFlags{VIPs: []string{"192.0.2.10/24"}, VIPMode: "vrrp"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := agent.Start(ctx, cfg)
	if err == nil {
		a.Shutdown(ctx)
		t.Fatal("bootstrap accepted --vip-mode vrrp")
	}
	if !strings.Contains(err.Error(), "--vip-mode") {
		t.Fatalf("error: %v", err)
	}
}

// TestCloudVIPModeSetting: a cluster whose every node runs protocol 10
// takes the hetzner and aws modes at bootstrap and through PATCH; the aws
// mode is refused (400, nothing changed) while an IPv6 VIP is configured.
func TestCloudVIPModeSetting(t *testing.T) {
	c := agenttest.New(t)
	cfg := c.Config("n1")
	cfg.Bootstrap = true
	cfg.Cluster = agent.ClusterFlags{VIPs: []string{"192.0.2.10/24", "2001:db8::10/64"}, VIPMode: fsm.VIPModeHetzner}
	a := c.Start(cfg)
	agenttest.Eventually(t, 10*time.Second, func() error {
		if m := a.State().Settings().Mode(); m != fsm.VIPModeHetzner {
			return fmt.Errorf("mode %q", m)
		}
		return nil
	})
	cl := c.Client("n1")
	if code, body, _ := cl.Call(http.MethodPatch, "/v1/cluster/settings", []byte(`{"vip_mode":"aws"}`)); code != http.StatusBadRequest || !strings.Contains(string(body), "IPv4") {
		t.Fatalf("aws with an IPv6 VIP: %d %s", code, body)
	}
	if m := a.State().Settings().Mode(); m != fsm.VIPModeHetzner {
		t.Fatalf("a refused change left mode %q", m)
	}
	if code, body, _ := cl.Call(http.MethodPatch, "/v1/cluster/settings", []byte(`{"vip_mode":"arp"}`)); code != http.StatusOK {
		t.Fatalf("back to arp: %d %s", code, body)
	}
}
