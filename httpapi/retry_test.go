package httpapi_test

// Retries after an unknown outcome, with fake backends: the leader commits
// a command and then reports that it lost leadership (as hashicorp/raft
// does with ErrLeadershipLost), so the API tries again. Real clusters hit
// this only by chance during a handover.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/pki"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// fakeNode is a Backend over a state machine shared by all fake nodes (as
// if replication were instant).
type fakeNode struct {
	id       string
	leaderID string
	shared   *sharedState
	// lose is how many of the next applies commit and then report a lost
	// leadership.
	mu   sync.Mutex // guards lose
	lose int
}

type sharedState struct {
	mu  sync.Mutex // guards idx and applies to f
	f   *fsm.FSM
	idx uint64
}

func (s *sharedState) apply(t fsm.CommandType, body any) any {
	b, err := fsm.Encode(t, body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idx++
	return s.f.Apply(&raft.Log{Index: s.idx, Type: raft.LogCommand, Data: b})
}

func (n *fakeNode) NodeID() string   { return n.id }
func (n *fakeNode) State() *fsm.FSM  { return n.shared.f }
func (n *fakeNode) IsLeader() bool   { return n.id == n.leaderID }
func (n *fakeNode) LeaderID() string { return n.leaderID }
func (n *fakeNode) VerifyLeader() error {
	if !n.IsLeader() {
		return httpapi.ErrNotLeader
	}
	return nil
}
func (n *fakeNode) Status() httpapi.NodeStatus {
	return httpapi.NodeStatus{NodeID: n.id, LeaderID: n.leaderID, Role: "follower"}
}
func (n *fakeNode) NodeStatusAt(context.Context, string) (httpapi.NodeStatus, error) {
	return httpapi.NodeStatus{}, errors.New("no status calls in this test")
}
func (n *fakeNode) Servers() ([]httpapi.Member, error)                         { return nil, nil }
func (n *fakeNode) AddVoter(id, raftAddr string) error                         { return nil }
func (n *fakeNode) RemoveServer(id string) error                               { return nil }
func (n *fakeNode) PeerStats() map[string]httpapi.PeerStats                    { return nil }
func (n *fakeNode) LeaderChanges() uint64                                      { return 1 }
func (n *fakeNode) RestoreSnapshot(r io.Reader, size int64) error              { return nil }
func (n *fakeNode) TransferLeadership(context.Context, string) (string, error) { return "", nil }

func (n *fakeNode) Apply(t fsm.CommandType, body any) (any, error) {
	if !n.IsLeader() {
		return nil, httpapi.ErrNotLeader
	}
	res := n.shared.apply(t, body)
	n.mu.Lock()
	lost := n.lose > 0
	if lost {
		n.lose--
	}
	n.mu.Unlock()
	if lost {
		return nil, fmt.Errorf("%w: leadership lost while committing the command", httpapi.ErrNotLeader)
	}
	if err, ok := res.(error); ok {
		return nil, err
	}
	return res, nil
}

// fakeCluster is a leader and a follower over one state, behind HTTPS.
type fakeCluster struct {
	shared           *sharedState
	leader, follower *fakeNode
	leaderURL        string
	followerURL      string
	token            string
	client           *http.Client
}

func newFakeCluster(t *testing.T) *fakeCluster {
	t.Helper()
	server, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.NewAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	sh := &sharedState{f: fsm.New(nil)}
	res := sh.apply(fsm.CmdInit, fsm.Init{
		Settings: fsm.Settings{
			PrivateKey: server.Private, PublicKey: server.Public, ListenPort: 51820,
			Pool: netip.MustParsePrefix("10.99.0.0/24"), VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")},
			Endpoint: "192.0.2.10:51820", MTU: 1420, Keepalive: 25,
		},
		CACertPEM: "ca", CAKeyPEM: "key", JoinToken: "join",
		AdminToken: fsm.AdminToken{ID: "admin", Hash: pki.HashToken(tok)},
		At:         time.Now().UTC(),
	})
	if err, ok := res.(error); ok {
		t.Fatal(err)
	}
	fc := &fakeCluster{shared: sh, token: tok}
	fc.leader = &fakeNode{id: "L", leaderID: "L", shared: sh}
	fc.follower = &fakeNode{id: "F", leaderID: "L", shared: sh}
	peerTLS := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test servers on loopback
	for _, n := range []*fakeNode{fc.leader, fc.follower} {
		api := httpapi.New(httpapi.Config{Backend: n, PeerTLS: peerTLS, LeaderWait: 2 * time.Second})
		srv := httptest.NewTLSServer(api.Handler())
		t.Cleanup(srv.Close)
		t.Cleanup(api.Close)
		if n == fc.leader {
			fc.leaderURL = srv.URL
		} else {
			fc.followerURL = srv.URL
		}
		res := sh.apply(fsm.CmdRegisterNode, fsm.RegisterNode{ID: n.id, RaftAddr: "127.0.0.1:1", APIAddr: strings.TrimPrefix(srv.URL, "https://"), At: time.Now().UTC()})
		if err, ok := res.(error); ok {
			t.Fatal(err)
		}
	}
	fc.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: peerTLS}}
	return fc
}

func (fc *fakeCluster) call(t *testing.T, base, method, path, body string) (int, []byte) {
	t.Helper()
	c := apiclient.Client{Base: base, Token: fc.token, HTTP: fc.client}
	resp, err := c.Send(context.Background(), method, path, nil, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// TestRetryAfterUnknownOutcome: the first try of each write commits but
// reports a lost leadership; the retry must answer as if the first try had
// answered.
func TestRetryAfterUnknownOutcome(t *testing.T) {
	fc := newFakeCluster(t)
	for _, via := range []struct{ name, url string }{{"leader", fc.leaderURL}, {"follower", fc.followerURL}} {
		// A create whose keys the server generates: the retry proposes
		// the same keys and still hands out the private key.
		fc.leader.lose = 1
		name := "gen-" + via.name
		st, body := fc.call(t, via.url, "POST", "/v1/peers", `{"name":"`+name+`"}`)
		if st != http.StatusCreated {
			t.Fatalf("create via the %s: %d %s", via.name, st, body)
		}
		var p httpapi.CreatePeerResponse
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		stored, ok := fc.shared.f.Peer(name)
		if !ok || stored.PublicKey != p.PublicKey || p.PrivateKey == "" || !strings.Contains(p.Config, p.PrivateKey) {
			t.Fatalf("create via the %s: answer %s does not match the stored peer %+v", via.name, body, stored.PublicKey)
		}
		if pub, _ := wgkey.Public(p.PrivateKey); pub != stored.PublicKey {
			t.Fatalf("create via the %s: the private key is not the stored peer's", via.name)
		}
		if !strings.Contains(p.Config, "PresharedKey = "+stored.PresharedKey) || stored.PresharedKey == "" {
			t.Fatalf("create via the %s: the config lacks the stored preshared key", via.name)
		}

		// A create with the caller's key: the retry finds the peer and
		// answers 201 (first try's status unknown) or 200; never 409.
		fc.leader.lose = 1
		st, body = fc.call(t, via.url, "POST", "/v1/peers", fmt.Sprintf(`{"name":"own-%s","public_key":%q}`, via.name, newKey(t)))
		if st != http.StatusOK && st != http.StatusCreated {
			t.Fatalf("create with a key via the %s: %d %s", via.name, st, body)
		}

		// A delete: the retry finds the peer gone and answers 204.
		fc.leader.lose = 1
		st, body = fc.call(t, via.url, "DELETE", "/v1/peers/"+name, "")
		if st != http.StatusNoContent {
			t.Fatalf("delete via the %s: %d %s", via.name, st, body)
		}
		if _, ok := fc.shared.f.Peer(name); ok {
			t.Fatalf("delete via the %s: the peer is still there", via.name)
		}
		// A plain delete of a missing peer is still 404.
		if st, body := fc.call(t, via.url, "DELETE", "/v1/peers/"+name, ""); st != http.StatusNotFound {
			t.Fatalf("second delete via the %s: %d %s", via.name, st, body)
		}
	}
	if total, _ := fc.shared.f.PeerCounts(); total != 2 {
		t.Fatalf("%d peers, want 2", total)
	}
}

// TestGeneratedKeysHeaderOnlyFromNodes: the header that carries generated
// keys to the leader is ignored on a request that was not forwarded.
func TestGeneratedKeysHeaderOnlyFromNodes(t *testing.T) {
	fc := newFakeCluster(t)
	kp, _ := wgkey.Generate()
	leader := apiclient.Client{Base: fc.leaderURL, Token: fc.token, HTTP: fc.client}
	resp, err := leader.Send(context.Background(), "POST", "/v1/peers", http.Header{"X-Raftguard-Generated-Keys": {kp.Private + " " + kp.Public}}, strings.NewReader(`{"name":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d", resp.StatusCode)
	}
	if p, _ := fc.shared.f.Peer("x"); p.PublicKey == kp.Public {
		t.Fatal("a client chose the generated key")
	}
	// A client that claims to be a forwarding node, without a node
	// certificate, is still a client: its header is ignored too.
	resp, err = leader.Send(context.Background(), "POST", "/v1/peers", http.Header{
		httpapi.HeaderForwardedBy:    {"F"},
		"X-Raftguard-Generated-Keys": {kp.Private + " " + kp.Public},
	}, strings.NewReader(`{"name":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if p, _ := fc.shared.f.Peer("y"); p.PublicKey == kp.Public {
		t.Fatal("a client posing as a node chose the generated key")
	}
}
