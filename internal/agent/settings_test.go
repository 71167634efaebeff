package agent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
)

// TestSettingsChangeReachesEveryNode: a settings change sent to a follower
// is validated as at bootstrap, applied through the leader, and the next
// client config on every node shows it.
func TestSettingsChangeReachesEveryNode(t *testing.T) {
	c := threeAtProtocol(t)
	leader := c.Leader()
	follower := followerOf(c, leader.NodeID())
	if code, body, _ := c.Client(leader.NodeID()).Call(http.MethodPost, "/v1/peers", map[string]any{"name": "laptop"}); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, bad := range []string{
		`{"client_dns":["192.0.2.53\nPostUp = rm -rf /"]}`,
		`{"endpoint":"no-port"}`,
		`{"mtu":100}`,
		`{"client_allowed_ips":["10.0.0.1/8"]}`,
		`{"keepalive":5,"unknown":1}`,
	} {
		code, body, _ := c.Client(follower).Call(http.MethodPatch, "/v1/cluster/settings", []byte(bad))
		if code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	code, body, _ := c.Client(follower).Call(http.MethodPatch, "/v1/cluster/settings", map[string]any{"client_dns": []string{"192.0.2.53", "corp.example"}, "keepalive": 15, "endpoint": "vpn.example.com:51820"})
	var st httpapi.SettingsView
	if code != http.StatusOK || json.Unmarshal(body, &st) != nil || st.Keepalive != 15 || strings.Join(st.ClientDNS, ",") != "192.0.2.53,corp.example" {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	if strings.Contains(string(body), leader.State().Settings().PrivateKey) {
		t.Fatal("the settings answer holds the private key")
	}
	for id := range c.Nodes {
		agenttest.Eventually(t, 10*time.Second, func() error {
			code, body, _ := c.Client(id).Call(http.MethodGet, "/v1/peers/laptop/config", nil)
			if code != http.StatusOK {
				return fmt.Errorf("%s: %d %s", id, code, body)
			}
			for _, want := range []string{"DNS = 192.0.2.53, corp.example", "PersistentKeepalive = 15", "Endpoint = vpn.example.com:51820"} {
				if !strings.Contains(string(body), want) {
					return fmt.Errorf("%s: no %q in\n%s", id, want, body)
				}
			}
			return nil
		})
	}
	// Clearing the DNS list.
	if code, body, _ := c.Client(leader.NodeID()).Call(http.MethodPatch, "/v1/cluster/settings", []byte(`{"client_dns":[]}`)); code != http.StatusOK || !strings.Contains(string(body), `"client_dns": []`) {
		t.Fatalf("clear DNS: %d %s", code, body)
	}
}
