package agent_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/pki"
)

func TestBootstrapJoinReplicate(t *testing.T) {
	tc := agenttest.Three(t)
	leader := tc.Leader()
	if leader.NodeID() != "n1" {
		t.Fatalf("leader %s, want n1", leader.NodeID())
	}
	// A create sent to each node in turn is visible on all three.
	for i, id := range []string{"n1", "n2", "n3"} {
		status, body, hdr := tc.Client(id).Call("POST", "/v1/peers", map[string]any{"name": fmt.Sprintf("laptop%d", i)})
		if status != http.StatusCreated {
			t.Fatalf("create via %s: %d %s", id, status, body)
		}
		if hdr.Get(httpapi.HeaderNode) != "n1" {
			t.Fatalf("create via %s served by %q, want the leader n1", id, hdr.Get(httpapi.HeaderNode))
		}
		// Read-your-write on the same node, without ?consistent.
		status, body, _ = tc.Client(id).Call("GET", fmt.Sprintf("/v1/peers/laptop%d", i), nil)
		if status != http.StatusOK {
			t.Fatalf("read after write on %s: %d %s", id, status, body)
		}
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		agenttest.Eventually(t, 5*time.Second, func() error {
			if total, _ := tc.Nodes[id].State().PeerCounts(); total != 3 {
				return fmt.Errorf("%s has %d peers", id, total)
			}
			return nil
		})
	}
	// Every node registered its API address.
	if n := len(leader.State().Nodes()); n != 3 {
		t.Fatalf("%d nodes registered", n)
	}
	// Every node's certificate names the VIPs, so API clients may use them.
	for _, id := range []string{"n1", "n2"} {
		pemBytes, err := os.ReadFile(filepath.Join(tc.Dirs[id], "tls", "node.crt"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(pemBytes)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := cert.VerifyHostname("192.0.2.10"); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	// The bootstrap banner holds both tokens; the logs hold neither.
	adminTok := tc.Client("n1").Token
	if !strings.Contains(tc.Banner.String(), adminTok) {
		t.Fatal("banner does not show the admin token")
	}
	for _, secret := range []string{adminTok, tc.JoinToken("n1"), tc.Client("n2").Token, leader.State().Settings().PrivateKey} {
		if strings.Contains(tc.Logs.String(), secret) {
			t.Fatal("a secret appears in the logs")
		}
	}
}

func TestJoinRefusedWithBadToken(t *testing.T) {
	tc := agenttest.New(t)
	n1 := tc.Bootstrap("n1")
	// The leader registers itself just after the cluster's first entry.
	agenttest.Eventually(t, 5*time.Second, func() error {
		if len(n1.State().Nodes()) != 1 {
			return errors.New("n1 not registered yet")
		}
		return nil
	})
	good := tc.JoinToken("n1")
	fp, _, _ := pki.ParseJoinToken(good)
	wrongSecret, _ := pki.NewJoinToken(fp)
	otherCA, _ := pki.NewCA("other", time.Now())
	foreign, _ := pki.NewJoinToken(otherCA.Fingerprint())
	for name, tok := range map[string]string{"wrong secret": wrongSecret, "foreign CA": foreign, "garbage": "nope"} {
		cfg := tc.Config("bad-" + strings.ReplaceAll(name, " ", "-"))
		cfg.Join, cfg.Token = []string{n1.APIAddr()}, tok
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		a, err := agent.Start(ctx, cfg)
		cancel()
		if err == nil {
			a.Shutdown(context.Background())
			t.Fatalf("%s: join succeeded", name)
		}
		t.Logf("%s: %v", name, err)
		if strings.Contains(err.Error(), tok) && tok != "nope" {
			t.Fatalf("%s: error shows the token", name)
		}
	}
	servers, _ := n1.Servers()
	if len(servers) != 1 || len(n1.State().Nodes()) != 1 {
		t.Fatalf("cluster changed: %v", servers)
	}
}

func TestJoinRefusesPlaintextMember(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	tc := agenttest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	ca, _ := pki.NewCA("x", time.Now())
	tok, _ := pki.NewJoinToken(ca.Fingerprint())
	cfg := tc.Config("n9")
	cfg.Join, cfg.Token = []string{ln.Addr().String()}, tok
	_, err = agent.Start(context.Background(), cfg)
	if err == nil || !errors.Is(err, agent.ErrJoinRefused) {
		t.Fatalf("got %v, want a refusal", err)
	}
}

func TestLeaderLossAndRestart(t *testing.T) {
	tc := agenttest.Three(t)
	c2 := tc.Client("n2")
	if status, body, _ := c2.Call("POST", "/v1/peers", map[string]any{"name": "before"}); status != http.StatusCreated {
		t.Fatalf("%d %s", status, body)
	}
	old := tc.Leader()
	oldID := old.NodeID()
	if err := old.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	delete(tc.Nodes, oldID)
	nl := tc.WaitLeader(oldID)
	// A new leader applies the entries committed before it led; poll for it.
	agenttest.Eventually(t, 5*time.Second, func() error {
		if _, ok := nl.State().Peer("before"); !ok {
			return errors.New("new leader has not applied a committed write")
		}
		return nil
	})
	// Writes work with two of three nodes.
	var other string
	for id := range tc.Nodes {
		if id != nl.NodeID() {
			other = id
		}
	}
	if status, body, _ := tc.Client(other).Call("POST", "/v1/peers", map[string]any{"name": "after"}); status != http.StatusCreated {
		t.Fatalf("%d %s", status, body)
	}
	// The old leader comes back from its data dir alone, as a follower.
	back := tc.Start(agent.Config{DataDir: tc.Dirs[oldID], Dataplane: "none", Logger: slog.New(slog.NewTextHandler(tc.Logs, nil))})
	if back.NodeID() != oldID {
		t.Fatalf("restarted as %q", back.NodeID())
	}
	agenttest.Eventually(t, 10*time.Second, func() error {
		if _, ok := back.State().Peer("after"); !ok {
			return errors.New("restarted node has not caught up")
		}
		return nil
	})
	if back.IsLeader() {
		t.Fatal("restarted node took leadership back")
	}
}

func TestSecondBootstrapIsNoop(t *testing.T) {
	tc := agenttest.New(t)
	n1 := tc.Bootstrap("n1")
	tok := tc.JoinToken("n1")
	key := n1.State().Settings().PublicKey
	n1.Shutdown(context.Background())
	delete(tc.Nodes, "n1")
	cfg := tc.Config("n1")
	cfg.Bootstrap = true
	cfg.Cluster = agent.ClusterFlags{VIPs: []string{"198.51.100.1/24"}}
	again := tc.Start(cfg)
	if again.State().Settings().PublicKey != key || tc.JoinToken("n1") != tok {
		t.Fatal("second bootstrap replaced the cluster")
	}
	if !strings.Contains(tc.Logs.String(), "--bootstrap ignored") {
		t.Fatal("no message about the ignored --bootstrap")
	}
}

func TestTransferLeadershipAndRemove(t *testing.T) {
	tc := agenttest.Three(t)
	c := tc.Client("n3")
	status, body, _ := c.Call("POST", "/v1/cluster/transfer-leader", map[string]string{"to": "n2"})
	if status != http.StatusOK || !strings.Contains(string(body), `"n2"`) {
		t.Fatalf("transfer: %d %s", status, body)
	}
	if l := tc.Leader(); l == nil || l.NodeID() != "n2" {
		t.Fatalf("leader is %v", l)
	}
	// n3 learns of the new leader with its first heartbeat: poll.
	agenttest.Eventually(t, 5*time.Second, func() error {
		status, body, _ := c.Call("GET", "/v1/cluster", nil)
		var st httpapi.ClusterStatus
		if status != http.StatusOK || json.Unmarshal(body, &st) != nil || st.LeaderID != "n2" || len(st.Nodes) != 3 {
			return fmt.Errorf("cluster status: %d %s", status, body)
		}
		for _, n := range st.Nodes {
			if !n.Reachable {
				return fmt.Errorf("node %s unreachable: %s", n.NodeID, n.Error)
			}
		}
		return nil
	})
	if status, body, _ := c.Call("DELETE", "/v1/cluster/nodes/n1", nil); status != http.StatusNoContent {
		t.Fatalf("remove: %d %s", status, body)
	}
	agenttest.Eventually(t, 5*time.Second, func() error {
		servers, err := tc.Nodes["n3"].Servers()
		if err != nil || len(servers) != 2 {
			return fmt.Errorf("servers %v %v", servers, err)
		}
		if _, ok := tc.Nodes["n3"].State().Node("n1"); ok {
			return errors.New("n1 still registered")
		}
		return nil
	})
}

// TestDataDirPermissions: the data dir is 0700 and every file in it 0600,
// Raft snapshots included.
func TestDataDirPermissions(t *testing.T) {
	tc := agenttest.New(t)
	cfg := tc.Config("n1")
	cfg.Bootstrap = true
	cfg.Cluster = agent.ClusterFlags{VIPs: []string{"192.0.2.10/24"}}
	cfg.Raft.SnapshotThreshold = 16
	cfg.Raft.TrailingLogs = 4
	cfg.Raft.SnapshotInterval = 50 * time.Millisecond
	n1 := tc.Start(cfg)
	c := tc.Client("n1")
	for i := range 40 {
		if status, body, _ := c.Call("POST", "/v1/peers", map[string]any{"name": fmt.Sprintf("p%d", i)}); status != http.StatusCreated {
			t.Fatalf("%d %s", status, body)
		}
	}
	dir := tc.Dirs["n1"]
	agenttest.Eventually(t, 10*time.Second, func() error {
		snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		if len(snaps) == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})
	// Stop the node so no snapshot is half-written while we look.
	tc.Stop(n1.NodeID())
	files := checkPrivateTree(t, dir)
	if files < 8 {
		t.Fatalf("only %d files checked", files)
	}
}
