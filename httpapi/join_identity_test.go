package httpapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/pki"
)

// joinCall posts a join request as a joining node of this version does.
func joinCall(addr string, cfg *tls.Config, path string, body []byte) (int, string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer client.CloseIdleConnections()
	c := apiclient.Client{Base: "https://" + addr, HTTP: client}
	resp, err := c.Send(context.Background(), "POST", path, http.Header{httpapi.HeaderProtocol: {strconv.Itoa(fsm.ProtocolVersion)}}, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// joinCert asks node via for a certificate for id naming ips, as a joining
// node does (join step one); it returns the status, body and the identity
// made of the answer (nil unless 200).
func joinCert(t *testing.T, e *env, via, token, id string, ips ...string) (int, string, *pki.Identity) {
	t.Helper()
	keyPEM, key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(httpapi.JoinCertRequest{NodeID: id, CSR: string(csr), IPs: ips, Token: token})
	st, resp, err := joinCall(e.tc.Nodes[via].APIAddr(), presenting(t, nil), "/v1/cluster/join/certificate", body)
	if err != nil {
		t.Fatal(err)
	}
	if st != http.StatusOK {
		return st, resp, nil
	}
	var out httpapi.JoinCertResponse
	if err := json.Unmarshal([]byte(resp), &out); err != nil {
		t.Fatal(err)
	}
	return st, resp, &pki.Identity{CACertPEM: []byte(out.CACert), CertPEM: []byte(out.Cert), KeyPEM: keyPEM}
}

// TestJoinTokenCannotTakeOverAMember: the join token admits new nodes but
// never hands out a live member's node id, Raft or API address, or a
// certificate naming another member's address, whether the request reaches
// the leader or a follower; every refusal is a 409 or 403 with a clear code
// and leaves every node's state as it was.
func TestJoinTokenCannotTakeOverAMember(t *testing.T) {
	e := newEnv(t)
	tok := e.tc.JoinToken("n1")
	l := e.leader().NodeID()
	f := e.follower()
	// A registered member with a routable address, to test certificate
	// addresses (the test nodes all use 127.0.0.1).
	if _, err := e.leader().Apply(fsm.CmdRegisterNode, fsm.RegisterNode{ID: "n9", RaftAddr: "198.51.100.9:7000", APIAddr: "198.51.100.9:7443", At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	before := e.converged()
	certBefore, _ := e.tc.Nodes[f].State().NodeCert(f)

	for _, via := range []string{l, f} {
		for _, id := range []string{l, f, "n9"} {
			st, body, _ := joinCert(t, e, via, tok, id, "127.0.0.1")
			if st != http.StatusConflict || agenttest.ErrorCode([]byte(body)) != "node_id_in_use" {
				t.Errorf("certificate for member %s via %s: %d %s", id, via, st, body)
			}
		}
		st, body, _ := joinCert(t, e, via, tok, "evil", "127.0.0.1", "198.51.100.9")
		if st != http.StatusConflict || agenttest.ErrorCode([]byte(body)) != "node_address_in_use" {
			t.Errorf("certificate naming n9's address via %s: %d %s", via, st, body)
		}
		st, body, _ = joinCert(t, e, via, tok, "evil", "0.0.0.0")
		if st != http.StatusBadRequest {
			t.Errorf("certificate naming 0.0.0.0 via %s: %d %s", via, st, body)
		}
	}
	if d := e.converged(); d != before {
		t.Fatal("a refused certificate request changed the state")
	}
	if c, _ := e.tc.Nodes[f].State().NodeCert(f); c != certBefore {
		t.Fatal("the follower's certificate was replaced")
	}

	// A new id gets a certificate; with it, join step two may not take a
	// member's Raft or API address, or another node id.
	st, body, evil := joinCert(t, e, f, tok, "evil", "127.0.0.1")
	if st != http.StatusOK {
		t.Fatalf("certificate for a new node: %d %s", st, body)
	}
	before = e.converged()
	n2, _ := e.tc.Nodes[f].State().Node(f)
	servers, err := e.leader().Servers()
	if err != nil {
		t.Fatal(err)
	}
	join := func(via string, ident *pki.Identity, id, raftAddr, apiAddr string) (int, string) {
		b, _ := json.Marshal(httpapi.JoinRequest{NodeID: id, RaftAddr: raftAddr, APIAddr: apiAddr, Token: tok})
		st, resp, err := joinCall(e.tc.Nodes[via].APIAddr(), presenting(t, ident), "/v1/cluster/join", b)
		if err != nil {
			t.Fatal(err)
		}
		return st, resp
	}
	for _, via := range []string{l, f} {
		for _, c := range []struct {
			ident         *pki.Identity
			id, raft, api string
			status        int
			code          string
			what          string
		}{
			{evil, "evil", n2.RaftAddr, "127.0.0.1:1", http.StatusConflict, "node_address_in_use", "a member's Raft address"},
			{evil, "evil", "127.0.0.1:1", n2.APIAddr, http.StatusConflict, "node_address_in_use", "a member's API address"},
			{evil, "evil", servers[0].RaftAddr, "127.0.0.1:2", http.StatusConflict, "node_address_in_use", "a voter's Raft address"},
			{evil, f, "127.0.0.1:1", "127.0.0.1:2", http.StatusForbidden, "certificate_mismatch", "another node id"},
			{nil, "evil", "127.0.0.1:1", "127.0.0.1:2", http.StatusForbidden, "certificate_required", "no certificate"},
			{evil, "evil", "198.51.100.77:1", "127.0.0.1:2", http.StatusForbidden, "certificate_mismatch", "an address the certificate does not name"},
		} {
			if st, resp := join(via, c.ident, c.id, c.raft, c.api); st != c.status || agenttest.ErrorCode([]byte(resp)) != c.code {
				t.Errorf("join with %s via %s: %d %s", c.what, via, st, resp)
			}
		}
	}
	if d := e.converged(); d != before {
		t.Fatal("a refused join changed the state")
	}
	if got, err := e.leader().Servers(); err != nil || len(got) != 3 {
		t.Fatalf("servers after refused joins: %v %v", got, err)
	}
	// The members still work.
	e.create(f, "after-probes")
}
