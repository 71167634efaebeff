package agent_test

import (
	"net/http"
	"testing"

	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// A node whose data plane holds N peers refuses the (N+1)th enabled peer
// with 422 and changes nothing; disabled peers, retries of an existing
// create and enabling after a delete still work.
func TestPeerLimitRefusesBeyondCapacity(t *testing.T) {
	c := agenttest.New(t)
	cfg := c.Config("n1")
	cfg.Bootstrap = true
	cfg.PeerLimit = 2
	cfg.Cluster.VIPs = []string{"192.0.2.10/24"}
	cfg.Cluster.Pool = "198.51.100.0/24"
	a := c.Start(cfg)
	cl := c.Client("n1")
	pub := func() string {
		kp, err := wgkey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		return kp.Public
	}
	create := func(name, key string, enabled bool) (int, string) {
		code, body, _ := cl.Call(http.MethodPost, "/v1/peers", map[string]any{"name": name, "public_key": key, "enabled": enabled})
		return code, agenttest.ErrorCode(body)
	}
	k1, k2, k3 := pub(), pub(), pub()
	for _, p := range []struct{ name, key string }{{"a", k1}, {"b", k2}} {
		if code, ec := create(p.name, p.key, true); code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", p.name, code, ec)
		}
	}
	if code, ec := create("c", k3, true); code != http.StatusUnprocessableEntity || ec != "peer_limit" {
		t.Fatalf("third enabled peer: %d %q, want 422 peer_limit", code, ec)
	}
	if _, ok := a.State().Peer("c"); ok {
		t.Fatal("refused peer was stored")
	}
	if code, _ := create("a", k1, true); code != http.StatusOK {
		t.Fatalf("retried create of an existing peer: %d, want 200", code)
	}
	if code, ec := create("c", k3, false); code != http.StatusCreated {
		t.Fatalf("disabled peer: %d %s", code, ec)
	}
	if code, _, _ := cl.Call(http.MethodPatch, "/v1/peers/c", map[string]any{"enabled": true}); code != http.StatusUnprocessableEntity {
		t.Fatalf("enabling beyond the limit: %d, want 422", code)
	}
	if code, _, _ := cl.Call(http.MethodDelete, "/v1/peers/b", nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, body, _ := cl.Call(http.MethodPatch, "/v1/peers/c", map[string]any{"enabled": true}); code != http.StatusOK {
		t.Fatalf("enabling after a delete: %d %s", code, body)
	}
	if total, enabled := a.State().PeerCounts(); total != 2 || enabled != 2 {
		t.Fatalf("peers %d enabled %d, want 2 and 2", total, enabled)
	}
}
