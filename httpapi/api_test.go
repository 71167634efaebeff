package httpapi_test

// These tests run real three-node clusters in one process (agenttest): real
// Raft over mutual TLS, real HTTPS, real forwarding from followers to the
// leader.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/skip2/go-qrcode"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/pki"
	"github.com/raftguard/raftguard/internal/wgkey"
)

var nodeIDs = []string{"n1", "n2", "n3"}

// env is a three-node cluster with clients, recording every response body
// read through call for the secret scan.
type env struct {
	t  *testing.T
	tc *agenttest.Cluster
	cl map[string]*agenttest.Client

	mu      sync.Mutex // guards bodies, secrets
	bodies  []string
	secrets map[string]string // secret -> what it is
}

func newEnv(t *testing.T) *env {
	t.Helper()
	tc := agenttest.Three(t)
	e := &env{t: t, tc: tc, cl: map[string]*agenttest.Client{}, secrets: map[string]string{}}
	for _, id := range nodeIDs {
		e.cl[id] = tc.Client(id)
	}
	return e
}

// call sends a request and records the answer for the secret scan.
func (e *env) call(id, method, path string, in any) (int, []byte, http.Header) {
	st, body, hdr := e.cl[id].Call(method, path, in)
	e.mu.Lock()
	e.bodies = append(e.bodies, fmt.Sprintf("%s %s via %s -> %d: %s", method, path, id, st, body))
	e.mu.Unlock()
	return st, body, hdr
}

// secret registers a value that must never appear in a recorded answer or
// a log line.
func (e *env) secret(v, what string) {
	if v == "" {
		return
	}
	e.mu.Lock()
	e.secrets[v] = what
	e.mu.Unlock()
}

// scanSecrets fails when a registered secret appears in any recorded
// answer or in the nodes' logs (which run at debug level).
func (e *env) scanSecrets() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	logs := e.tc.Logs.String()
	if len(e.secrets) == 0 {
		e.t.Fatal("no secrets registered: the scan would prove nothing")
	}
	for s, what := range e.secrets {
		if strings.Contains(logs, s) {
			e.t.Errorf("%s appears in the logs", what)
		}
		for _, b := range e.bodies {
			if strings.Contains(b, s) {
				e.t.Errorf("%s appears in an answer: %.200s", what, b)
			}
		}
	}
}

func (e *env) leader() *agent.Agent {
	e.t.Helper()
	return e.tc.WaitLeader("")
}

func (e *env) follower() string {
	l := e.leader().NodeID()
	for _, id := range nodeIDs {
		if id != l && e.tc.Nodes[id] != nil {
			return id
		}
	}
	e.t.Fatal("no follower")
	return ""
}

// digest hashes node id's whole replicated state (the snapshot format).
func (e *env) digest(id string) string {
	e.t.Helper()
	var buf bytes.Buffer
	if err := e.tc.Nodes[id].State().WriteSnapshot(&buf); err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

// converged waits until every running node holds the same state and
// returns its digest.
func (e *env) converged() string {
	e.t.Helper()
	var d string
	agenttest.Eventually(e.t, 10*time.Second, func() error {
		d = ""
		for id := range e.tc.Nodes {
			got := e.digest(id)
			if d != "" && got != d {
				return fmt.Errorf("nodes differ")
			}
			d = got
		}
		return nil
	})
	return d
}

func newKey(t testing.TB) string {
	t.Helper()
	kp, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return kp.Public
}

func newPSK(t testing.TB) string {
	t.Helper()
	k, err := wgkey.Preshared()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func decodePeer(t *testing.T, body []byte) httpapi.CreatePeerResponse {
	t.Helper()
	var p httpapi.CreatePeerResponse
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return p
}

// create makes a peer with the server generating its keys; the private and
// preshared keys become secrets for the scan.
func (e *env) create(id, name string) httpapi.CreatePeerResponse {
	e.t.Helper()
	st, body, hdr := e.cl[id].Call("POST", "/v1/peers", map[string]any{"name": name})
	if st != http.StatusCreated {
		e.t.Fatalf("create %s via %s: %d %s", name, id, st, body)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		e.t.Errorf("create %s via %s: Cache-Control %q on an answer with a private key", name, id, hdr.Get("Cache-Control"))
	}
	p := decodePeer(e.t, body)
	if p.PrivateKey == "" || p.Config == "" || !p.HasPresharedKey {
		e.t.Fatalf("create %s: no private key, config or preshared key: %s", name, body)
	}
	if pub, _ := wgkey.Public(p.PrivateKey); pub != p.PublicKey {
		e.t.Fatalf("create %s: private key does not match the public key", name)
	}
	e.secret(p.PrivateKey, "the private key of "+name)
	for _, line := range strings.Split(p.Config, "\n") {
		if v, ok := strings.CutPrefix(line, "PresharedKey = "); ok {
			e.secret(v, "the preshared key of "+name)
		}
	}
	return p
}

func TestCreateOnEveryNodeVisibleEverywhere(t *testing.T) {
	e := newEnv(t)
	leader := e.leader().NodeID()
	for i, id := range nodeIDs {
		name := fmt.Sprintf("laptop%d", i)
		st, body, hdr := e.cl[id].Call("POST", "/v1/peers", map[string]any{"name": name})
		if st != http.StatusCreated {
			t.Fatalf("create via %s: %d %s", id, st, body)
		}
		if got := hdr.Get(httpapi.HeaderNode); got != leader {
			t.Errorf("create via %s served by %q, want the leader %s", id, got, leader)
		}
		if hdr.Get("Location") != "/v1/peers/"+name || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("create via %s: Location %q, Cache-Control %q", id, hdr.Get("Location"), hdr.Get("Cache-Control"))
		}
	}
	for _, id := range nodeIDs {
		agenttest.Eventually(t, 5*time.Second, func() error {
			st, body, _ := e.call(id, "GET", "/v1/peers", nil)
			var list struct{ Peers []httpapi.PeerView }
			if st != http.StatusOK || json.Unmarshal(body, &list) != nil {
				return fmt.Errorf("list on %s: %d %s", id, st, body)
			}
			if len(list.Peers) != 3 {
				return fmt.Errorf("%s lists %d peers", id, len(list.Peers))
			}
			return nil
		})
	}
}

func TestReadYourWriteOnEveryNode(t *testing.T) {
	e := newEnv(t)
	for round := range 5 {
		for _, id := range nodeIDs {
			name := fmt.Sprintf("ryw-%s-%d", id, round)
			e.create(id, name)
			// No ?consistent: the node that acknowledged the write
			// serves the read from its own replica.
			if st, body, _ := e.call(id, "GET", "/v1/peers/"+name, nil); st != http.StatusOK {
				t.Fatalf("read after create on %s: %d %s", id, st, body)
			}
			if st, body, _ := e.call(id, "PATCH", "/v1/peers/"+name, map[string]any{"enabled": false}); st != http.StatusOK {
				t.Fatalf("disable on %s: %d %s", id, st, body)
			}
			st, body, _ := e.call(id, "GET", "/v1/peers/"+name, nil)
			if st != http.StatusOK || decodePeer(t, body).Enabled {
				t.Fatalf("read after disable on %s: %d %s", id, st, body)
			}
			if st, body, _ := e.call(id, "DELETE", "/v1/peers/"+name, nil); st != http.StatusNoContent {
				t.Fatalf("delete on %s: %d %s", id, st, body)
			}
			if st, body, _ := e.call(id, "GET", "/v1/peers/"+name, nil); st != http.StatusNotFound {
				t.Fatalf("read after delete on %s: %d %s", id, st, body)
			}
		}
	}
	e.scanSecrets()
}

// TestWriteWithoutQuorum: with the leader and one more node gone, a create
// sent to the last node answers 503 with Retry-After, and once the nodes
// are back and a leader is elected the create has left no trace.
func TestWriteWithoutQuorum(t *testing.T) {
	e := newEnv(t)
	e.create("n2", "before")
	// Every replica has it before two nodes go (a committed entry need
	// not have reached the third node yet).
	e.converged()
	leader := e.leader().NodeID()
	var survivor, other string
	for _, id := range nodeIDs {
		if id == leader {
			continue
		}
		if survivor == "" {
			survivor = id
		} else {
			other = id
		}
	}
	e.tc.Stop(leader)
	e.tc.Stop(other)
	s := e.tc.Nodes[survivor]
	// Wait until the survivor knows it has no leader, so that the create
	// is never proposed (a leader without quorum could still append it to
	// its own log).
	agenttest.Eventually(t, 10*time.Second, func() error {
		if s.IsLeader() || s.LeaderID() != "" {
			return fmt.Errorf("%s still sees leader %q", survivor, s.LeaderID())
		}
		return nil
	})
	start := time.Now()
	st, body, hdr := e.call(survivor, "POST", "/v1/peers", map[string]any{"name": "ghost", "public_key": newKey(t)})
	if st != http.StatusServiceUnavailable || agenttest.ErrorCode(body) != "no_leader" || hdr.Get("Retry-After") == "" {
		t.Fatalf("create without quorum: %d %s (Retry-After %q)", st, body, hdr.Get("Retry-After"))
	}
	t.Logf("503 after %s", time.Since(start).Round(time.Millisecond))
	// Reads are still served from the local replica.
	if st, body, _ := e.call(survivor, "GET", "/v1/peers/before", nil); st != http.StatusOK {
		t.Fatalf("local read without quorum: %d %s", st, body)
	}
	// A consistent read needs the leader.
	if st, body, _ := e.call(survivor, "GET", "/v1/peers/before?consistent=true", nil); st != http.StatusServiceUnavailable {
		t.Fatalf("consistent read without quorum: %d %s", st, body)
	}

	for _, id := range []string{leader, other} {
		e.tc.Start(agent.Config{
			DataDir:   e.tc.Dirs[id],
			Dataplane: "none",
			Logger:    slog.New(slog.NewTextHandler(e.tc.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Stderr:    e.tc.Banner,
		})
	}
	e.leader()
	for _, id := range nodeIDs {
		agenttest.Eventually(t, 10*time.Second, func() error {
			st, body, _ := e.call(id, "GET", "/v1/peers/ghost?consistent=true", nil)
			if st != http.StatusNotFound {
				return fmt.Errorf("ghost on %s: %d %s", id, st, body)
			}
			if st, body, _ := e.call(id, "GET", "/v1/peers/before?consistent=true", nil); st != http.StatusOK {
				return fmt.Errorf("before on %s: %d %s", id, st, body)
			}
			return nil
		})
		if _, ok := e.tc.Nodes[id].State().Peer("ghost"); ok {
			t.Fatalf("ghost exists on %s", id)
		}
	}
	// The cluster takes writes again.
	e.create(survivor, "after")
	e.scanSecrets()
}

// TestInvalidInput sends every kind of invalid input, each to another node
// (so that most are forwarded), and checks the status, the error code, and
// that no node's state changed.
func TestInvalidInput(t *testing.T) {
	e := newEnv(t)
	alicePSK := newPSK(t)
	e.secret(alicePSK, "alice's preshared key")
	aliceKey := newKey(t)
	st, body, _ := e.call("n2", "POST", "/v1/peers", map[string]any{
		"name": "alice", "public_key": aliceKey, "preshared_key": alicePSK, "allowed_ips": []string{"192.168.50.0/24"},
	})
	if st != http.StatusCreated {
		t.Fatalf("create alice: %d %s", st, body)
	}
	alice := decodePeer(t, body)
	if !alice.HasPresharedKey || alice.PrivateKey != "" || alice.Config != "" {
		t.Fatalf("alice: %s", body)
	}
	aliceV4 := alice.Addresses[0].Addr().String()

	st, body, _ = e.call("n3", "GET", "/v1/interface", nil)
	var iface httpapi.InterfaceView
	if st != http.StatusOK || json.Unmarshal(body, &iface) != nil {
		t.Fatalf("interface: %d %s", st, body)
	}
	settings := e.leader().State().Settings()
	e.secret(settings.PrivateKey, "the server's private key")
	if iface.PublicKey != settings.PublicKey {
		t.Fatalf("interface public key %q, want %q", iface.PublicKey, settings.PublicKey)
	}

	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	shortKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 31))
	longKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 33))
	zeroKey := base64.StdEncoding.EncodeToString(make([]byte, 32))
	peer := func(extra map[string]any) map[string]any {
		m := map[string]any{"name": "bob", "public_key": newKey(t)}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	big := bytes.Repeat([]byte(" "), 2<<20)
	copy(big, `{"name":"huge"}`)

	type tc struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
	}
	cases := []tc{
		{"bad base64 key", "POST", "/v1/peers", peer(map[string]any{"public_key": "not base64!!"}), 400, "invalid"},
		{"key of 31 bytes", "POST", "/v1/peers", peer(map[string]any{"public_key": shortKey}), 400, "invalid"},
		{"key of 33 bytes", "POST", "/v1/peers", peer(map[string]any{"public_key": longKey}), 400, "invalid"},
		{"all-zero key", "POST", "/v1/peers", peer(map[string]any{"public_key": zeroKey}), 400, "invalid"},
		{"bad preshared key", "POST", "/v1/peers", peer(map[string]any{"preshared_key": "x"}), 400, "invalid"},
		{"all-zero preshared key", "POST", "/v1/peers", peer(map[string]any{"preshared_key": zeroKey}), 400, "invalid"},
		{"server's own key", "POST", "/v1/peers", peer(map[string]any{"public_key": settings.PublicKey}), 409, "duplicate_key"},
		{"duplicate name", "POST", "/v1/peers", peer(map[string]any{"name": "alice"}), 409, "duplicate_name"},
		{"duplicate key", "POST", "/v1/peers", peer(map[string]any{"public_key": aliceKey}), 409, "duplicate_key"},
		{"address outside the pools", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"10.200.0.5"}}), 400, "invalid"},
		{"IPv6 address outside the pools", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"fd00:98::5"}}), 400, "invalid"},
		{"network address", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"10.96.0.0"}}), 400, "invalid"},
		{"broadcast address", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"10.111.255.255/32"}}), 400, "invalid"},
		{"server address", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"10.96.0.1"}}), 409, "address_in_use"},
		{"IPv6 server address", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"fd00:99::1"}}), 409, "address_in_use"},
		{"another peer's address", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{aliceV4}}), 409, "address_in_use"},
		{"two addresses in one pool", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"10.96.1.1", "10.96.1.2"}}), 400, "invalid"},
		{"address with a prefix", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"10.96.1.1/24"}}), 400, "invalid"},
		{"not an address", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"10.96.1"}}), 400, "invalid"},
		{"address with a zone", "POST", "/v1/peers", peer(map[string]any{"addresses": []string{"fd00:99::5%eth0"}}), 400, "invalid"},
		{"allowed IPs over the pool", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"10.96.0.0/16"}}), 409, "overlap"},
		{"allowed IPs around the pool", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"10.0.0.0/8"}}), 409, "overlap"},
		{"allowed IPs over the IPv6 pool", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"fd00:99::/80"}}), 409, "overlap"},
		{"allowed IPs over another peer's", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"192.168.50.128/25"}}), 409, "overlap"},
		{"allowed IPs around another peer's", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"192.168.0.0/16"}}), 409, "overlap"},
		{"allowed IPs over a VIP", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"192.0.2.0/24"}}), 409, "overlap"},
		{"allowed IPs over the IPv6 VIP", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"2001:db8::/32"}}), 409, "overlap"},
		{"allowed IPs overlapping each other", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"172.16.0.0/16", "172.16.5.0/24"}}), 409, "overlap"},
		{"non-canonical CIDR", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"192.168.60.1/24"}}), 400, "invalid"},
		{"non-canonical IPv6 CIDR", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"fd10::1/64"}}), 400, "invalid"},
		{"CIDR with a zone", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"fe80::%eth0/64"}}), 400, "invalid"},
		{"IPv4-mapped CIDR", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"::ffff:172.20.0.0/112"}}), 400, "invalid"},
		{"not a CIDR", "POST", "/v1/peers", peer(map[string]any{"allowed_ips": []string{"192.168.60.0"}}), 400, "invalid"},
		{"empty name", "POST", "/v1/peers", peer(map[string]any{"name": ""}), 400, "invalid"},
		{"name with a control character", "POST", "/v1/peers", peer(map[string]any{"name": "bad\x01name"}), 400, "invalid"},
		{"name with a newline", "POST", "/v1/peers", peer(map[string]any{"name": "bad\nname"}), 400, "invalid"},
		{"name with a slash", "POST", "/v1/peers", peer(map[string]any{"name": "a/b"}), 400, "invalid"},
		{"name with a space", "POST", "/v1/peers", peer(map[string]any{"name": "a b"}), 400, "invalid"},
		{"name of 65 bytes", "POST", "/v1/peers", peer(map[string]any{"name": strings.Repeat("a", 65)}), 400, "invalid"},
		{"name of 33 two-byte runes", "POST", "/v1/peers", peer(map[string]any{"name": strings.Repeat("é", 33)}), 400, "invalid"},
		{"oversized body", "POST", "/v1/peers", big, 413, "too_large"},
		{"unknown field", "POST", "/v1/peers", peer(map[string]any{"colour": "blue"}), 400, "invalid"},
		{"private key field", "POST", "/v1/peers", peer(map[string]any{"private_key": zeroKey}), 400, "invalid"},
		{"malformed JSON", "POST", "/v1/peers", []byte(`{"name":`), 400, "invalid"},
		{"trailing data", "POST", "/v1/peers", []byte(`{"name":"bob"} {}`), 400, "invalid"},
		{"empty body", "POST", "/v1/peers", []byte(``), 400, "invalid"},
		{"wrong type", "POST", "/v1/peers", []byte(`{"name":42}`), 400, "invalid"},
		{"patch: bad preshared key", "PATCH", "/v1/peers/alice", map[string]any{"preshared_key": short}, 400, "invalid"},
		{"patch: overlapping allowed IPs", "PATCH", "/v1/peers/alice", map[string]any{"allowed_ips": []string{"10.96.0.0/12"}}, 409, "overlap"},
		{"patch: non-canonical allowed IPs", "PATCH", "/v1/peers/alice", map[string]any{"allowed_ips": []string{"192.168.50.1/24"}}, 400, "invalid"},
		{"patch: unknown field", "PATCH", "/v1/peers/alice", map[string]any{"name": "carol"}, 400, "invalid"},
		{"patch: unknown peer", "PATCH", "/v1/peers/nobody", map[string]any{"enabled": false}, 404, "not_found"},
		{"delete: unknown peer", "DELETE", "/v1/peers/nobody", nil, 404, "not_found"},
		{"get: unknown peer", "GET", "/v1/peers/nobody", nil, 404, "not_found"},
		{"config: unknown peer", "GET", "/v1/peers/nobody/config", nil, 404, "not_found"},
		{"config: unknown format", "GET", "/v1/peers/alice/config?format=gif", nil, 400, "invalid"},
		{"no route", "GET", "/v1/nothing", nil, 404, "no_route"},
		{"wrong method", "PUT", "/v1/peers", nil, 405, "method_not_allowed"},
		{"transfer to an unknown node", "POST", "/v1/cluster/transfer-leader", map[string]any{"to": "n9"}, 404, "not_found"},
		{"restore: not a snapshot", "POST", "/v1/cluster/snapshot/restore", []byte("hello"), 400, "invalid_snapshot"},
	}
	before := e.converged()
	for i, c := range cases {
		id := nodeIDs[i%3]
		st, body, hdr := e.call(id, c.method, c.path, c.body)
		if st != c.status || agenttest.ErrorCode(body) != c.code {
			t.Errorf("%s via %s: got %d %q, want %d %q: %s", c.name, id, st, agenttest.ErrorCode(body), c.status, c.code, body)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
		if d := e.digest(e.leader().NodeID()); d != before {
			t.Fatalf("%s via %s changed the leader's state", c.name, id)
		}
	}
	if after := e.converged(); after != before {
		t.Fatal("the invalid requests changed the state")
	}
	if st, body, _ := e.call("n1", "GET", "/v1/peers/bob", nil); st != http.StatusNotFound {
		t.Fatalf("bob exists: %d %s", st, body)
	}

	// Idempotent create: the same name and key answer 200 with the
	// existing peer; the same name with another key is a conflict.
	for _, id := range nodeIDs {
		st, body, _ := e.call(id, "POST", "/v1/peers", map[string]any{"name": "alice", "public_key": aliceKey})
		if st != http.StatusOK {
			t.Fatalf("retried create via %s: %d %s", id, st, body)
		}
		if p := decodePeer(t, body); p.PublicKey != aliceKey || !slices.Equal(p.Addresses, alice.Addresses) || p.PrivateKey != "" {
			t.Fatalf("retried create via %s answered another peer: %s", id, body)
		}
		st, body, _ = e.call(id, "POST", "/v1/peers", map[string]any{"name": "alice"})
		if st != http.StatusConflict || agenttest.ErrorCode(body) != "duplicate_name" {
			t.Fatalf("same name, generated key via %s: %d %s", id, st, body)
		}
	}
	if total, _ := e.tc.Nodes["n1"].State().PeerCounts(); total != 1 {
		t.Fatalf("%d peers after retried creates", total)
	}

	// Authentication: no token, a wrong token, a malformed header.
	before = e.converged()
	for _, id := range nodeIDs {
		anon := *e.cl[id]
		for _, tok := range []string{"", "wrong", "rgadm_" + strings.Repeat("x", 40)} {
			anon.Token = tok
			st, body, _ := anon.Call("GET", "/v1/peers", nil)
			if st != http.StatusUnauthorized || agenttest.ErrorCode(body) != "unauthorized" {
				t.Fatalf("token %q via %s: %d %s", tok, id, st, body)
			}
			e.mu.Lock()
			e.bodies = append(e.bodies, string(body))
			e.mu.Unlock()
		}
		// A write with a wrong token changes nothing either.
		anon.Token = "wrong"
		if st, _, _ := anon.Call("DELETE", "/v1/peers/alice", nil); st != http.StatusUnauthorized {
			t.Fatalf("delete with a wrong token via %s: %d", id, st)
		}
	}
	// Health needs no token.
	anon := *e.cl["n3"]
	anon.Token = ""
	if st, body, _ := anon.Call("GET", "/v1/health", nil); st != http.StatusOK {
		t.Fatalf("health: %d %s", st, body)
	}
	// An oversized body from a caller without a token is refused before
	// it is read.
	if st, body, _ := anon.Call("POST", "/v1/cluster/snapshot/restore", bytes.Repeat([]byte("x"), 4<<20)); st != http.StatusUnauthorized {
		t.Fatalf("unauthenticated upload: %d %s", st, body)
	}
	if after := e.converged(); after != before {
		t.Fatal("requests without a valid token changed the state")
	}

	// Repeated failures from one address: 429 with a Retry-After that
	// tells the truth (the lockout lasts until the oldest counted failure
	// is a minute old); the failures are logged without the token. The
	// right token is still served from that address. (Every caller here
	// is 127.0.0.1.)
	f := e.follower()
	bad := *e.cl[f]
	bad.Token = "rgadm1.not-a-token-but-it-must-not-be-logged-either"
	e.secret(bad.Token, "a wrong token")
	var last int
	var lastHdr http.Header
	start := time.Now()
	for range 30 {
		last, _, lastHdr = bad.Call("GET", "/v1/peers", nil)
		if last == http.StatusTooManyRequests {
			break
		}
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("after repeated failures: %d", last)
	}
	ra, err := strconv.Atoi(lastHdr.Get("Retry-After"))
	if lim := 60 - int(time.Since(start).Seconds()); err != nil || ra < lim-2 || ra > 60 {
		t.Fatalf("Retry-After %q, want about %d s", lastHdr.Get("Retry-After"), lim)
	}
	if !strings.Contains(e.tc.Logs.String(), "authentication failed") || !strings.Contains(e.tc.Logs.String(), "address locked out") {
		t.Fatal("the failed authentications were not logged")
	}
	if st, body, _ := e.call(f, "GET", "/v1/peers", nil); st != http.StatusOK {
		t.Fatalf("good token from a locked-out address: %d %s", st, body)
	}
	// The Bearer scheme is case-insensitive (RFC 9110).
	for _, scheme := range []string{"bearer", "BEARER", "Bearer  "} {
		anon := apiclient.Client{Base: e.cl[f].Base, HTTP: e.cl[f].HTTP}
		resp, err := anon.Send(context.Background(), "GET", "/v1/peers", http.Header{"Authorization": {scheme + " " + e.cl[f].Token}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("scheme %q: %d", scheme, resp.StatusCode)
		}
	}
	e.scanSecrets()
}

func TestPeerLifecycle(t *testing.T) {
	e := newEnv(t)
	// PATCH: enable and disable, allowed IPs, preshared key.
	p := e.create("n2", "site")
	cases := []struct {
		patch map[string]any
		check func(httpapi.PeerView) bool
	}{
		{map[string]any{"enabled": false}, func(v httpapi.PeerView) bool { return !v.Enabled }},
		{map[string]any{"enabled": true}, func(v httpapi.PeerView) bool { return v.Enabled }},
		{map[string]any{"allowed_ips": []string{"172.20.0.0/16", "fd20::/48"}}, func(v httpapi.PeerView) bool {
			return len(v.AllowedIPs) == 2 && v.AllowedIPs[0].String() == "172.20.0.0/16"
		}},
		{map[string]any{"allowed_ips": []string{}}, func(v httpapi.PeerView) bool { return len(v.AllowedIPs) == 0 }},
		{map[string]any{"preshared_key": ""}, func(v httpapi.PeerView) bool { return !v.HasPresharedKey }},
		{map[string]any{"preshared_key": newPSK(t)}, func(v httpapi.PeerView) bool { return v.HasPresharedKey }},
	}
	for i, c := range cases {
		if psk, ok := c.patch["preshared_key"].(string); ok {
			e.secret(psk, "a patched preshared key")
		}
		id := nodeIDs[i%3]
		st, body, _ := e.call(id, "PATCH", "/v1/peers/site", c.patch)
		var v httpapi.PeerView
		if st != http.StatusOK || json.Unmarshal(body, &v) != nil || !c.check(v) {
			t.Fatalf("patch %v via %s: %d %s", c.patch, id, st, body)
		}
		for _, other := range nodeIDs {
			agenttest.Eventually(t, 5*time.Second, func() error {
				st, body, _ := e.call(other, "GET", "/v1/peers/site", nil)
				var v httpapi.PeerView
				if st != http.StatusOK || json.Unmarshal(body, &v) != nil || !c.check(v) {
					return fmt.Errorf("patch %v not seen on %s: %d %s", c.patch, other, st, body)
				}
				return nil
			})
		}
	}
	// Allowed IPs moved off a peer are free for another.
	if st, body, _ := e.call("n1", "PATCH", "/v1/peers/site", map[string]any{"allowed_ips": []string{"172.21.0.0/16"}}); st != http.StatusOK {
		t.Fatalf("%d %s", st, body)
	}
	if st, body, _ := e.call("n3", "POST", "/v1/peers", map[string]any{"name": "site2", "public_key": newKey(t), "allowed_ips": []string{"172.21.1.0/24"}}); st != http.StatusConflict {
		t.Fatalf("overlap with site's new routes: %d %s", st, body)
	}
	if st, body, _ := e.call("n3", "POST", "/v1/peers", map[string]any{"name": "site2", "public_key": newKey(t), "allowed_ips": []string{"172.20.1.0/24"}}); st != http.StatusCreated {
		t.Fatalf("site's old routes are not free: %d %s", st, body)
	}

	// DELETE frees the address: the next peer gets it.
	st, body, _ := e.call("n3", "DELETE", "/v1/peers/site", nil)
	if st != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("delete: %d %s", st, body)
	}
	next := e.create("n1", "successor")
	if !slices.Equal(next.Addresses, p.Addresses) {
		t.Fatalf("successor got %v, want the freed %v", next.Addresses, p.Addresses)
	}
	// A chosen address is free again too.
	if st, body, _ := e.call("n2", "DELETE", "/v1/peers/successor", nil); st != http.StatusNoContent {
		t.Fatalf("%d %s", st, body)
	}
	chosen := []string{p.Addresses[0].Addr().String()}
	if st, body, _ := e.call("n2", "POST", "/v1/peers", map[string]any{"name": "chooser", "public_key": newKey(t), "addresses": chosen}); st != http.StatusCreated {
		t.Fatalf("freed address not available: %d %s", st, body)
	}

	// POST /v1/keys: a fresh, consistent key set that is not stored.
	// (Wait for every replica first: reads on other nodes than the one
	// that took a write may lag a moment.)
	e.converged()
	total, _ := e.tc.Nodes["n1"].State().PeerCounts()
	for _, id := range nodeIDs {
		st, body, hdr := e.cl[id].Call("POST", "/v1/keys", nil)
		var k httpapi.Keys
		if st != http.StatusOK || json.Unmarshal(body, &k) != nil {
			t.Fatalf("keys via %s: %d %s", id, st, body)
		}
		if pub, err := wgkey.Public(k.PrivateKey); err != nil || pub != k.PublicKey || k.PresharedKey == "" || k.PresharedKey == k.PrivateKey {
			t.Fatalf("keys via %s are inconsistent", id)
		}
		if hdr.Get("Cache-Control") != "no-store" {
			t.Fatalf("keys via %s: Cache-Control %q", id, hdr.Get("Cache-Control"))
		}
		e.secret(k.PrivateKey, "a private key from /v1/keys")
		e.secret(k.PresharedKey, "a preshared key from /v1/keys")
	}
	if now, _ := e.tc.Nodes["n1"].State().PeerCounts(); now != total {
		t.Fatal("POST /v1/keys stored something")
	}

	// GET /v1/interface: the public side only.
	settings := e.leader().State().Settings()
	e.secret(settings.PrivateKey, "the server's private key")
	for _, id := range nodeIDs {
		st, body, _ := e.call(id, "GET", "/v1/interface", nil)
		var iface httpapi.InterfaceView
		if st != http.StatusOK || json.Unmarshal(body, &iface) != nil || iface.PublicKey != settings.PublicKey || iface.Peers != total {
			t.Fatalf("interface via %s: %d %s", id, st, body)
		}
		if strings.Contains(string(body), "private") {
			t.Fatalf("interface via %s mentions a private key: %s", id, body)
		}
	}

	// Reads of every kind, on every node, show no secret.
	for _, id := range nodeIDs {
		for _, path := range []string{"/v1/peers", "/v1/peers/chooser", "/v1/peers/site2", "/v1/peers/site2/config", "/v1/interface",
			"/v1/cluster", "/v1/node", "/v1/cluster/admin-tokens", "/v1/peers?consistent=true", "/metrics"} {
			if st, body, _ := e.call(id, "GET", path, nil); st != http.StatusOK {
				t.Fatalf("GET %s via %s: %d %s", path, id, st, body)
			}
		}
	}
	// The config of a peer never holds its keys, only placeholders.
	st, body, _ = e.call("n2", "GET", "/v1/peers/site2/config", nil)
	if st != http.StatusOK || !strings.Contains(string(body), httpapi.PrivateKeyPlaceholder) {
		t.Fatalf("config: %d %s", st, body)
	}
	e.secret(e.tc.JoinToken("n1"), "the join token")
	for _, id := range nodeIDs {
		e.secret(e.cl[id].Token, "the admin token of "+id)
	}
	cl := e.leader().State().Cluster()
	e.secret(pemBody(cl.CAKeyPEM), "the CA key")
	e.scanSecrets()
}

// pemBody returns the first line of a PEM block's base64 body.
func pemBody(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) < 2 {
		return s
	}
	return lines[1]
}

// TestWritesDuringTransferLeader runs writers against every node while
// leadership moves: every write must get a success answer.
func TestWritesDuringTransferLeader(t *testing.T) {
	e := newEnv(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // guards failures, created
	var failures []string
	created := map[string]bool{}
	const writers = 6
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := nodeIDs[(w+i)%3]
				name := fmt.Sprintf("w%d-%d", w, i)
				// Half the creates let the server generate the keys.
				body := map[string]any{"name": name}
				if i%2 == 0 {
					body["public_key"] = newKey(t)
				}
				// Not recorded: the answer holds the private key.
				st, resp, _ := e.cl[id].Call("POST", "/v1/peers", body)
				if st != http.StatusCreated {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("create %s via %s: %d %s", name, id, st, resp))
					mu.Unlock()
					continue
				}
				var p httpapi.CreatePeerResponse
				_ = json.Unmarshal(resp, &p)
				if i%2 == 1 && (p.PrivateKey == "" || p.Config == "") {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("create %s via %s: no private key in %s", name, id, resp))
					mu.Unlock()
				}
				e.secret(p.PrivateKey, "the private key of "+name)
				keep := i%3 != 0
				if !keep {
					st, resp, _ = e.call(nodeIDs[(w+i+1)%3], "DELETE", "/v1/peers/"+name, nil)
					if st != http.StatusNoContent {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("delete %s: %d %s", name, st, resp))
						mu.Unlock()
					}
				}
				mu.Lock()
				created[name] = keep
				mu.Unlock()
			}
		}()
	}
	// Move leadership around: to a named node, then to whichever follower
	// raft picks, twice each, asked through different nodes. (Few rounds:
	// every handover risks hashicorp/raft v1.7.3's pipeline replication
	// deadlock, which hangs the old leader's shutdown at the end.)
	const transfers = 4
	for round := range transfers {
		from := nodeIDs[round%3]
		req := map[string]any{}
		if round%2 == 0 {
			old := e.leader().NodeID()
			for _, id := range nodeIDs {
				if id != old {
					req["to"] = id
					break
				}
			}
		}
		before := e.leader().NodeID()
		st, body, _ := e.call(from, "POST", "/v1/cluster/transfer-leader", req)
		if st != http.StatusOK {
			t.Fatalf("transfer %v via %s: %d %s", req, from, st, body)
		}
		var tr httpapi.TransferResponse
		_ = json.Unmarshal(body, &tr)
		if tr.LeaderID == before {
			t.Fatalf("transfer %v: leader still %s", req, before)
		}
		// Let the writers make progress against the new leader before
		// the next transfer (poll, bounded).
		n := countCreated(&mu, created)
		agenttest.Eventually(t, 10*time.Second, func() error {
			if got := countCreated(&mu, created); got < n+10 {
				return fmt.Errorf("%d creates since the transfer", got-n)
			}
			return nil
		})
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d writes failed during transfers, e.g.:\n%s", len(failures), strings.Join(failures[:min(10, len(failures))], "\n"))
	}
	if len(created) < 30 {
		t.Fatalf("only %d creates ran during the transfers", len(created))
	}
	// Every acknowledged create is there and every acknowledged delete
	// took effect, on every node.
	e.converged()
	keep := 0
	for _, k := range created {
		if k {
			keep++
		}
	}
	for _, id := range nodeIDs {
		st := e.tc.Nodes[id].State()
		for name, k := range created {
			if _, ok := st.Peer(name); ok != k {
				t.Fatalf("%s on %s: present %v, want %v", name, id, ok, k)
			}
		}
		if total, _ := st.PeerCounts(); total != keep {
			t.Fatalf("%s has %d peers, want %d", id, total, keep)
		}
	}
	t.Logf("%d creates across %d transfers", len(created), transfers)
	e.scanSecrets()
}

func countCreated(mu *sync.Mutex, m map[string]bool) int {
	mu.Lock()
	defer mu.Unlock()
	return len(m)
}

func TestPeerConfigQR(t *testing.T) {
	e := newEnv(t)
	e.create("n1", "phone")
	e.converged()
	for _, id := range nodeIDs {
		st, text, hdr := e.call(id, "GET", "/v1/peers/phone/config", nil)
		if st != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") || !strings.Contains(string(text), "[Interface]") {
			t.Fatalf("config via %s: %d %s", id, st, text)
		}
		st, img, hdr := e.cl[id].Call("GET", "/v1/peers/phone/config?format=qr", nil)
		if st != http.StatusOK || hdr.Get("Content-Type") != "image/png" {
			t.Fatalf("QR via %s: %d %s %.100s", id, st, hdr.Get("Content-Type"), img)
		}
		pic, err := png.Decode(bytes.NewReader(img))
		if err != nil {
			t.Fatalf("QR via %s is not a PNG: %v", id, err)
		}
		// The picture holds exactly the QR code of the text config.
		q, err := qrcode.New(string(text), qrcode.Medium)
		if err != nil {
			t.Fatal(err)
		}
		bits := q.Bitmap()
		scale := pic.Bounds().Dx() / len(bits)
		if scale < 2 || pic.Bounds().Dx() != scale*len(bits) || pic.Bounds().Dy() != pic.Bounds().Dx() {
			t.Fatalf("QR via %s: %v for %d modules", id, pic.Bounds(), len(bits))
		}
		for y, row := range bits {
			for x, black := range row {
				r, _, _, _ := pic.At(x*scale+scale/2, y*scale+scale/2).RGBA()
				if (r < 0x8000) != black {
					t.Fatalf("QR via %s: module (%d,%d) differs from the config's QR code", id, x, y)
				}
			}
		}
		// With ?consistent=true the leader renders it; the answer is the same.
		st, img2, hdr := e.cl[id].Call("GET", "/v1/peers/phone/config?format=qr&consistent=true", nil)
		if st != http.StatusOK || hdr.Get("Content-Type") != "image/png" || !bytes.Equal(img, img2) {
			t.Fatalf("consistent QR via %s: %d %s", id, st, hdr.Get("Content-Type"))
		}
	}
}

// scrape fetches and parses node id's metrics.
func scrape(t *testing.T, cl *agenttest.Client) map[string]*dto.MetricFamily {
	t.Helper()
	st, body, hdr := cl.Call("GET", "/metrics", nil)
	if st != http.StatusOK {
		t.Fatalf("metrics: %d %s", st, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("metrics Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, body)
	}
	return fams
}

// metric returns the value of the sample of family name whose labels
// include want, or -1.
func metric(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	sum, found := 0.0, false
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return sum
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	leader := e.leader().NodeID()
	f := e.follower()
	for i := range 4 {
		e.create(f, fmt.Sprintf("m%d", i))
	}
	if st, body, _ := e.call(f, "PATCH", "/v1/peers/m0", map[string]any{"enabled": false}); st != http.StatusOK {
		t.Fatalf("%d %s", st, body)
	}
	e.call(f, "GET", "/v1/peers/nobody", nil)
	agenttest.Eventually(t, 5*time.Second, func() error {
		for _, id := range nodeIDs {
			if n, enabled := e.tc.Nodes[id].State().PeerCounts(); n != 4 || enabled != 3 {
				return fmt.Errorf("%s has %d peers, %d enabled", id, n, enabled)
			}
		}
		return nil
	})
	for _, id := range nodeIDs {
		fams := scrape(t, e.cl[id])
		role := "follower"
		if id == leader {
			role = "leader"
		}
		st := e.tc.Nodes[id].Status()
		checks := []struct {
			name   string
			labels map[string]string
			ok     func(float64) bool
		}{
			{"raftguard_raft_role", map[string]string{"role": role}, eq(1)},
			{"raftguard_raft_role", map[string]string{"role": "candidate"}, eq(0)},
			{"raftguard_raft_term", nil, eq(float64(st.Term))},
			{"raftguard_raft_last_index", nil, atLeast(float64(st.AppliedIndex))},
			{"raftguard_raft_applied_index", nil, atLeast(1)},
			{"raftguard_raft_commit_index", nil, atLeast(1)},
			{"raftguard_raft_leader_changes_total", nil, atLeast(1)},
			{"raftguard_peers", nil, eq(4)},
			{"raftguard_peers_enabled", nil, eq(3)},
			{"raftguard_pool_addresses_free", map[string]string{"pool": "10.96.0.0/12"}, eq(1<<20 - 3 - 4)},
			{"raftguard_pool_addresses_free", map[string]string{"pool": "fd00:99::/64"}, atLeast(1 << 62)},
			{"raftguard_node_info", map[string]string{"node_id": id}, eq(1)},
			{"go_goroutines", nil, atLeast(1)},
		}
		if id == f {
			checks = append(checks,
				struct {
					name   string
					labels map[string]string
					ok     func(float64) bool
				}{"raftguard_api_requests_total", map[string]string{"route": "POST /v1/peers", "code": "201"}, eq(4)},
				struct {
					name   string
					labels map[string]string
					ok     func(float64) bool
				}{"raftguard_api_requests_total", map[string]string{"route": "GET /v1/peers/{name}", "code": "404"}, eq(1)},
				struct {
					name   string
					labels map[string]string
					ok     func(float64) bool
				}{"raftguard_api_request_duration_seconds", map[string]string{"route": "PATCH /v1/peers/{name}", "code": "200"}, eq(1)},
				struct {
					name   string
					labels map[string]string
					ok     func(float64) bool
				}{"raftguard_api_forwarded_requests_total", map[string]string{"route": "POST /v1/peers", "code": "201"}, eq(4)},
			)
		}
		if id == leader {
			checks = append(checks, struct {
				name   string
				labels map[string]string
				ok     func(float64) bool
			}{"raftguard_api_requests_total", map[string]string{"route": "POST /v1/peers", "code": "201"}, atLeast(4)})
		}
		for _, c := range checks {
			if v := metric(fams, c.name, c.labels); !c.ok(v) {
				t.Errorf("%s: %s%v = %v", id, c.name, c.labels, v)
			}
		}
	}

	// A member node's certificate, without a token, may scrape too.
	ident, err := pki.LoadIdentity(filepath.Join(e.tc.Dirs["n2"], "tls"))
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := ident.PeerClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	certClient := &agenttest.Client{Client: apiclient.Client{Base: e.cl["n3"].Base, HTTP: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}}}
	if st, body, _ := certClient.Call("GET", "/metrics", nil); st != http.StatusOK || !strings.Contains(string(body), "raftguard_raft_role") {
		t.Fatalf("metrics with a node certificate: %d %.200s", st, body)
	}
	// ... but a certificate alone cannot fetch the snapshot.
	if st, body, _ := certClient.Call("GET", "/v1/cluster/snapshot", nil); st != http.StatusUnauthorized {
		t.Fatalf("snapshot with a node certificate only: %d %.200s", st, body)
	}
	// Neither token nor certificate: 401.
	anon := *e.cl["n3"]
	anon.Token = ""
	if st, _, _ := anon.Call("GET", "/metrics", nil); st != http.StatusUnauthorized {
		t.Fatalf("metrics without credentials: %d", st)
	}
	// Metrics hold no secret.
	for _, id := range nodeIDs {
		e.call(id, "GET", "/metrics", nil)
	}
	e.secret(e.leader().State().Settings().PrivateKey, "the server's private key")
	e.secret(e.cl["n1"].Token, "the admin token")
	e.scanSecrets()
}

func eq(want float64) func(float64) bool     { return func(v float64) bool { return v == want } }
func atLeast(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }

func TestSnapshotSaveRestore(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.create(nodeIDs[i%3], fmt.Sprintf("s%d", i))
	}
	if st, body, _ := e.call("n1", "PATCH", "/v1/peers/s1", map[string]any{"enabled": false, "allowed_ips": []string{"172.30.0.0/16"}}); st != http.StatusOK {
		t.Fatalf("%d %s", st, body)
	}
	f := e.follower()
	// Save through a follower, from its own replica once it has caught
	// up, and through the leader with ?consistent=true.
	saved := e.converged()
	st, snap, hdr := e.cl[f].Call("GET", "/v1/cluster/snapshot", nil)
	if st != http.StatusOK {
		t.Fatalf("save: %d %s", st, snap)
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("Content-Type") != httpapi.SnapshotContentType ||
		!strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("save headers: %v", hdr)
	}
	if sum := sha256.Sum256(snap); hex.EncodeToString(sum[:]) != saved {
		t.Fatal("the saved snapshot is not the node's state")
	}
	st, snap2, hdr := e.cl[f].Call("GET", "/v1/cluster/snapshot?consistent=true", nil)
	if st != http.StatusOK || !bytes.Equal(snap, snap2) || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("consistent save: %d, same %v, Cache-Control %q", st, bytes.Equal(snap, snap2), hdr.Get("Cache-Control"))
	}

	// Change things: delete peers, add one.
	for _, name := range []string{"s0", "s1", "s3"} {
		if st, body, _ := e.call(f, "DELETE", "/v1/peers/"+name, nil); st != http.StatusNoContent {
			t.Fatalf("delete %s: %d %s", name, st, body)
		}
	}
	e.create("n2", "later")
	changed := e.converged()

	// Bad files change nothing.
	otherCA, err := pki.NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreign := replaceCAPair(t, snap, otherCA.CertPEM, otherCA.KeyPEM)
	truncated := snap[:len(snap)-40]
	badPeer := bytes.Replace(snap, []byte(`"name":"s2"`), []byte(`"name":"s/2"`), 1)
	for name, body := range map[string][]byte{
		"truncated":      truncated,
		"bad peer":       badPeer,
		"trailing data":  append(slices.Clone(snap), []byte("{}\n")...),
		"wrong header":   bytes.Replace(snap, []byte(`"version":1`), []byte(`"version":99`), 1),
		"empty":          {},
		"other cluster":  foreign,
		"random":         randomBytes(4096),
		"a JSON object":  []byte(`{"peers":[]}`),
		"only a header":  snap[:bytes.IndexByte(snap, '\n')+1],
		"duplicate peer": duplicatePeer(t, snap),
	} {
		st, resp, _ := e.call(nodeIDs[len(name)%3], "POST", "/v1/cluster/snapshot/restore", body)
		want := http.StatusBadRequest
		if name == "other cluster" {
			want = http.StatusConflict
		}
		if st != want {
			t.Fatalf("restore of a %s file: %d %s", name, st, resp)
		}
	}
	if d := e.converged(); d != changed {
		t.Fatal("a refused restore changed the state")
	}

	// Restore through a follower: every node gets the saved state back.
	st, body, _ := e.call(f, "POST", "/v1/cluster/snapshot/restore", snap)
	var rr httpapi.RestoreResponse
	if st != http.StatusOK || json.Unmarshal(body, &rr) != nil || rr.Peers != 5 {
		t.Fatalf("restore: %d %s", st, body)
	}
	// Read-your-write on the node that answered.
	if st, body, _ := e.call(f, "GET", "/v1/peers/s1", nil); st != http.StatusOK || decodePeer(t, body).Enabled {
		t.Fatalf("s1 after the restore on %s: %d %s", f, st, body)
	}
	for _, id := range nodeIDs {
		agenttest.Eventually(t, 10*time.Second, func() error {
			st := e.tc.Nodes[id].State()
			for i := range 5 {
				if _, ok := st.Peer(fmt.Sprintf("s%d", i)); !ok {
					return fmt.Errorf("s%d missing on %s", i, id)
				}
			}
			if _, ok := st.Peer("later"); ok {
				return fmt.Errorf("later still on %s", id)
			}
			return nil
		})
	}
	// Every node holds the saved peers, settings and trust material. (The
	// restore re-registers the leader afterwards, so the node records and
	// index differ.)
	want := fsm.New(nil)
	if err := want.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	e.converged()
	for _, id := range nodeIDs {
		st := e.tc.Nodes[id].State()
		if !reflect.DeepEqual(st.Peers(), want.Peers()) || !reflect.DeepEqual(st.Settings(), want.Settings()) ||
			st.Cluster() != want.Cluster() || !reflect.DeepEqual(st.AdminTokens(), want.AdminTokens()) {
			t.Fatalf("%s: the restored state differs from the saved one", id)
		}
	}
	// The restored cluster works: writes through every node, forwarded
	// ones included, and the freed-then-restored addresses stay taken.
	s0, _ := e.leader().State().Peer("s0")
	for i, id := range nodeIDs {
		p := e.create(id, fmt.Sprintf("post%d", i))
		if slices.Equal(p.Addresses, s0.Addresses) {
			t.Fatalf("post%d got s0's address", i)
		}
	}
	// A snapshot from another cluster is restored only when forced.
	st, body, _ = e.call("n3", "POST", "/v1/cluster/snapshot/restore?force=true", foreign)
	if st != http.StatusOK {
		t.Fatalf("forced restore: %d %s", st, body)
	}
	agenttest.Eventually(t, 10*time.Second, func() error {
		for _, id := range nodeIDs {
			if e.tc.Nodes[id].State().Cluster().CACertPEM != string(otherCA.CertPEM) {
				return fmt.Errorf("%s has not taken the forced restore", id)
			}
		}
		return nil
	})
	// Members stay registered, so forwarding still works.
	e.create(e.follower(), "after-force")
}

// duplicatePeer repeats the first peer of a snapshot in place of the second.
func duplicatePeer(t *testing.T, snap []byte) []byte {
	t.Helper()
	lines := bytes.Split(snap, []byte("\n"))
	if len(lines) < 5 {
		t.Fatal("snapshot has fewer than two peers")
	}
	lines[3] = lines[2]
	return bytes.Join(lines, []byte("\n"))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestSecretsNeverInErrors: an invalid preshared key, or one that is
// almost valid, never comes back in the error.
func TestSecretsNeverInErrors(t *testing.T) {
	e := newEnv(t)
	psk := newPSK(t)
	e.secret(psk, "a preshared key")
	e.secret(psk[:len(psk)-2], "a preshared key missing its padding")
	for _, bad := range []string{psk[:len(psk)-2], psk + "AA==", strings.ToUpper(psk[:40]) + "!"} {
		e.secret(bad, "a malformed preshared key")
		for _, id := range nodeIDs {
			st, body, _ := e.call(id, "POST", "/v1/peers", map[string]any{"name": "x", "public_key": newKey(t), "preshared_key": bad})
			if st != http.StatusBadRequest {
				t.Fatalf("%d %s", st, body)
			}
		}
	}
	// A preshared key given at creation is never read back.
	st, body, _ := e.call("n3", "POST", "/v1/peers", map[string]any{"name": "y", "public_key": newKey(t), "preshared_key": psk})
	if st != http.StatusCreated {
		t.Fatalf("%d %s", st, body)
	}
	for _, id := range nodeIDs {
		e.call(id, "GET", "/v1/peers/y?consistent=true", nil)
		e.call(id, "GET", "/v1/peers/y/config?consistent=true", nil)
		e.call(id, "PATCH", "/v1/peers/y", map[string]any{"enabled": true})
	}
	e.scanSecrets()
}
