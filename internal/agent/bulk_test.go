package agent_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
)

func bulkKey(i int) string {
	var b [32]byte
	b[0], b[1], b[2] = 9, byte(i>>8), byte(i)
	return base64.StdEncoding.EncodeToString(b[:])
}

// TestBulkCreate: a bulk create sent to a follower checks every peer
// first (a conflict anywhere changes nothing and names the peer), a dry
// run changes nothing, and a real one puts 2,500 peers (three log
// entries) on every node.
func TestBulkCreate(t *testing.T) {
	c := threeAtProtocol(t)
	leader := c.Leader()
	follower := followerOf(c, leader.NodeID())
	cl := c.Client(follower)
	const n = 2500
	req := httpapi.BulkCreateRequest{}
	for i := range n {
		k := bulkKey(i)
		req.Peers = append(req.Peers, httpapi.CreatePeerRequest{Name: fmt.Sprintf("p%d", i), PublicKey: &k})
	}
	// The last peer reuses the first one's key: nothing is created.
	bad := req
	bad.Peers = append(append([]httpapi.CreatePeerRequest(nil), req.Peers...), httpapi.CreatePeerRequest{Name: "dup", PublicKey: req.Peers[0].PublicKey})
	if code, body, _ := cl.Call(http.MethodPost, "/v1/peers/bulk", bad); code != http.StatusConflict {
		t.Fatalf("bulk create with a duplicate key: %d %s", code, body)
	}
	req.DryRun = true
	code, body, _ := cl.Call(http.MethodPost, "/v1/peers/bulk", req)
	var resp httpapi.BulkCreateResponse
	if code != http.StatusOK || json.Unmarshal(body, &resp) != nil || resp.Created != n || !resp.DryRun {
		t.Fatalf("dry run: %d %.200s", code, body)
	}
	if total, _ := leader.State().PeerCounts(); total != 0 {
		t.Fatalf("%d peers after a failed create and a dry run", total)
	}
	req.DryRun = false
	start := time.Now()
	code, body, _ = cl.Call(http.MethodPost, "/v1/peers/bulk", req)
	if code != http.StatusCreated || json.Unmarshal(body, &resp) != nil || resp.Created != n {
		t.Fatalf("bulk create: %d %.200s", code, body)
	}
	t.Logf("%d peers created in one request in %v", n, time.Since(start).Round(time.Millisecond))
	agenttest.Eventually(t, 10*time.Second, func() error {
		for _, a := range c.Nodes {
			if total, _ := a.State().PeerCounts(); total != n {
				return fmt.Errorf("%s holds %d peers", a.NodeID(), total)
			}
		}
		return nil
	})
	// A retry is answered with the existing peers.
	code, body, _ = cl.Call(http.MethodPost, "/v1/peers/bulk", req)
	if code != http.StatusOK || json.Unmarshal(body, &resp) != nil || resp.Existing != n || resp.Created != 0 {
		t.Fatalf("retried bulk create: %d %.200s", code, body)
	}
}
