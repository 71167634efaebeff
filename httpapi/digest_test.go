package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
)

// clusterDigests asks node via for GET /v1/cluster and returns each
// member's state digest; an error while any member is unreachable, lacks
// a digest, or the members disagree.
func (e *env) clusterDigests(via string) (string, error) {
	st, body, _ := e.call(via, "GET", "/v1/cluster", nil)
	if st != http.StatusOK {
		return "", fmt.Errorf("GET /v1/cluster: %d %s", st, body)
	}
	var cs httpapi.ClusterStatus
	if err := json.Unmarshal(body, &cs); err != nil {
		return "", err
	}
	if len(cs.Nodes) != len(nodeIDs) {
		return "", fmt.Errorf("%d nodes listed", len(cs.Nodes))
	}
	d := ""
	for _, n := range cs.Nodes {
		if !n.Reachable || len(n.StateDigest) != 64 {
			return "", fmt.Errorf("node %s: reachable %v, digest %q", n.NodeID, n.Reachable, n.StateDigest)
		}
		if d != "" && n.StateDigest != d {
			return "", fmt.Errorf("digests differ: %s", body)
		}
		d = n.StateDigest
	}
	return d, nil
}

// TestStateDigestInClusterStatus: every node reports the same state digest
// in GET /v1/cluster once the writes have replicated, it is the hash of the
// snapshot encoding, and it changes with a write.
func TestStateDigestInClusterStatus(t *testing.T) {
	e := newEnv(t)
	for i, id := range nodeIDs {
		e.create(id, fmt.Sprintf("digest-%d", i))
	}
	want := e.converged()
	var before string
	agenttest.Eventually(t, 10*time.Second, func() error {
		d, err := e.clusterDigests(e.follower())
		before = d
		return err
	})
	if before != want {
		t.Fatalf("API digest %s, hash of the snapshot %s", before, want)
	}

	// GET /v1/node of each node agrees, and asking again gives the same.
	for _, id := range nodeIDs {
		for range 2 {
			st, body, _ := e.call(id, "GET", "/v1/node", nil)
			var ns httpapi.NodeStatus
			if st != http.StatusOK || json.Unmarshal(body, &ns) != nil {
				t.Fatalf("GET /v1/node on %s: %d %s", id, st, body)
			}
			if ns.StateDigest != before || ns.StateIndex == 0 {
				t.Fatalf("%s: digest %s at %d, cluster says %s", id, ns.StateDigest, ns.StateIndex, before)
			}
		}
	}

	e.create(e.follower(), "digest-after")
	var after string
	agenttest.Eventually(t, 10*time.Second, func() error {
		d, err := e.clusterDigests(e.leader().NodeID())
		if err == nil && d == before {
			return fmt.Errorf("digest unchanged after a write")
		}
		after = d
		return err
	})
	if want := e.converged(); after != want {
		t.Fatalf("API digest %s, hash of the snapshot %s", after, want)
	}
	e.scanSecrets()
}
