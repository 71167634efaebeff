package agent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
)

// threeAtProtocol starts a cluster of three nodes and waits until every
// node has applied the cluster version of this build's protocol.
func threeAtProtocol(t *testing.T) *agenttest.Cluster {
	t.Helper()
	c := agenttest.Three(t)
	agenttest.Eventually(t, 20*time.Second, func() error {
		for _, a := range c.Nodes {
			if v := a.State().ClusterVersion(); v != fsm.ProtocolVersion {
				return fmt.Errorf("%s: cluster version %d", a.NodeID(), v)
			}
		}
		return nil
	})
	return c
}

// followerOf returns the id of a node of c other than leaderID.
func followerOf(c *agenttest.Cluster, leaderID string) string {
	var follower string
	for id := range c.Nodes {
		if id != leaderID {
			follower = id
		}
	}
	return follower
}

// TestClusterVersionRaised: in a cluster of nodes of this build the leader
// raises the cluster version to this build's protocol through the log, and
// every node reports its protocol and the cluster version.
func TestClusterVersionRaised(t *testing.T) {
	c := threeAtProtocol(t)
	code, body, _ := c.Client("n2").Call(http.MethodGet, "/v1/cluster", nil)
	var st httpapi.ClusterStatus
	if code != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("GET /v1/cluster: %d %s", code, body)
	}
	if st.ClusterVersion != fsm.ProtocolVersion || len(st.Nodes) != 3 {
		t.Fatalf("cluster status %+v", st)
	}
	for _, n := range st.Nodes {
		if n.Protocol != fsm.ProtocolVersion || n.ClusterVersion != fsm.ProtocolVersion {
			t.Errorf("%s reports protocol %d, cluster version %d", n.NodeID, n.Protocol, n.ClusterVersion)
		}
	}
	// A node of the first release (it sends no protocol) may not join a
	// cluster at version 2: it would stop at the first entry it cannot
	// apply.
	code, body, _ = c.Client("n1").Call(http.MethodPost, "/v1/cluster/join", map[string]string{"node_id": "old", "raft_addr": "127.0.0.1:1", "api_addr": "127.0.0.1:2", "token": c.JoinToken("n1")})
	if code != http.StatusConflict || agenttest.ErrorCode(body) != "upgrade_required" {
		t.Fatalf("join without a protocol: %d %s", code, body)
	}
}
