package httpapi_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/pki"
)

// nodeIdentity loads node id's TLS identity from its data dir.
func nodeIdentity(t *testing.T, tc *agenttest.Cluster, id string) *pki.Identity {
	t.Helper()
	ident, err := pki.LoadIdentity(filepath.Join(tc.Dirs[id], "tls"))
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

func identityFingerprint(t *testing.T, ident *pki.Identity) string {
	t.Helper()
	c, err := ident.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	return pki.Fingerprint(c)
}

// foreignIdentity is a node certificate from a CA of another cluster.
func foreignIdentity(t *testing.T, id string) *pki.Identity {
	t.Helper()
	ca, err := pki.NewCA("other cluster", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignNode(csr, id, nil, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &pki.Identity{CACertPEM: ca.CertPEM, CertPEM: cert, KeyPEM: keyPEM}
}

// presenting is a client TLS config that presents ident's certificate (none
// when nil) whatever CAs the server asks for, and accepts any server: the
// probes test the server's judgement of the client only.
func presenting(t *testing.T, ident *pki.Identity) *tls.Config {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} //nolint:gosec // probes test the server side
	if ident != nil {
		kp, err := tls.X509KeyPair(ident.CertPEM, ident.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	return cfg
}

// raftProbe connects to a Raft port and sends a byte that is no Raft RPC. A
// connection the node accepted reaches Raft, which closes it (EOF); one the
// TLS layer refused gets an alert. It returns nil when Raft got the
// connection.
func raftProbe(addr string, cfg *tls.Config) error {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{0xff}); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		return errors.New("raft answered an unknown RPC")
	}
	return err
}

// plaintextProbe sends bytes without TLS and returns what came back before
// the node closed the connection.
func plaintextProbe(t *testing.T, addr, payload string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("plaintext connection to %s was left open", addr)
	}
	return string(b)
}

// apiCall calls a node's API presenting cfg's certificate, as a forwarding
// node when forwardedBy is set, with token when not empty.
func apiCall(addr string, cfg *tls.Config, method, path, token, forwardedBy, body string) (int, string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer client.CloseIdleConnections()
	c := apiclient.Client{Base: "https://" + addr, Token: token, HTTP: client}
	h := http.Header{}
	if forwardedBy != "" {
		h.Set(httpapi.HeaderForwardedBy, forwardedBy)
	}
	resp, err := c.Send(context.Background(), method, path, h, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestRemovedNodeCertificateRefused runs three real nodes (Raft over mutual
// TLS, HTTPS), removes a follower and checks that its certificate is refused
// by the Raft port and the API of the remaining nodes, like plaintext and a
// foreign CA's certificate, while the members go on working and the node,
// wiped and joined again with a new certificate, works.
func TestRemovedNodeCertificateRefused(t *testing.T) {
	e := newEnv(t)
	tc := e.tc
	joinToken := tc.JoinToken("n1")
	leader := e.leader()
	victim := e.follower()
	var member string
	for _, id := range nodeIDs {
		if id != leader.NodeID() && id != victim {
			member = id
		}
	}
	victimID := nodeIdentity(t, tc, victim)
	victimFP := identityFingerprint(t, victimID)
	victimInfo, err := agent.ReadNodeInfo(tc.Dirs[victim])
	if err != nil {
		t.Fatal(err)
	}
	memberCfg := presenting(t, nodeIdentity(t, tc, member))
	victimCfg := presenting(t, victimID)
	foreignCfg := presenting(t, foreignIdentity(t, member))
	adminToken := e.cl[member].Token
	survivors := []*agent.Agent{leader, tc.Nodes[member]}

	// Every node knows every node's certificate: the joiners' recorded at
	// issue, the bootstrap node's by itself once it led.
	agenttest.Eventually(t, 10*time.Second, func() error {
		for _, id := range nodeIDs {
			want := identityFingerprint(t, nodeIdentity(t, tc, id))
			for _, a := range tc.Nodes {
				if c, ok := a.State().NodeCert(id); !ok || c.Fingerprint != want || c.NotAfter.IsZero() {
					return fmt.Errorf("%s records %+v for %s, want %s", a.NodeID(), c, id, want)
				}
			}
		}
		return nil
	})
	// While a member, its certificate works: the positive control.
	for _, a := range survivors {
		if err := raftProbe(a.RaftAddr(), victimCfg); err != nil {
			t.Fatalf("member certificate refused by %s's Raft port: %v", a.NodeID(), err)
		}
		if st, body, err := apiCall(a.APIAddr(), victimCfg, "GET", "/v1/node", "", "", ""); err != nil || st != http.StatusOK {
			t.Fatalf("member certificate read on %s: %d %s %v", a.NodeID(), st, body, err)
		}
	}

	// A Raft connection opened with the certificate before the removal
	// (it starts an AppendEntries and waits): the node closes it when the
	// certificate is revoked.
	held, err := tls.Dial("tcp", leader.RaftAddr(), victimCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := held.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}

	// Remove it through the other follower (a forwarded write).
	agenttest.Eventually(t, 20*time.Second, func() error {
		st, body, _ := e.call(member, "DELETE", "/v1/cluster/nodes/"+victim, nil)
		if st == http.StatusConflict && agenttest.ErrorCode(body) == "is_leader" {
			// An election on a loaded machine made it the leader.
			e.call(member, "POST", "/v1/cluster/transfer-leader", map[string]string{"to": member})
		}
		if st != http.StatusNoContent {
			return fmt.Errorf("remove %s: %d %s", victim, st, body)
		}
		return nil
	})
	agenttest.Eventually(t, 10*time.Second, func() error {
		for _, a := range survivors {
			if !a.State().CertRevoked(victimFP) {
				return fmt.Errorf("%s has not revoked %s's certificate", a.NodeID(), victim)
			}
			if _, ok := a.State().AdminTokenByHash(pki.HashToken(victimInfo.AdminToken)); ok {
				return fmt.Errorf("%s has not revoked %s's admin token", a.NodeID(), victim)
			}
		}
		return nil
	})

	_ = held.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := held.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("Raft connection opened before the removal: read %v, want EOF (closed by the node)", err)
	}

	for _, a := range survivors {
		refusedBefore := a.RaftNode().RefusedConnections()
		// Raft port: revoked, foreign CA, no certificate and plaintext are
		// refused at the handshake; a member still gets through.
		for name, cfg := range map[string]*tls.Config{"revoked": victimCfg, "foreign CA": foreignCfg, "no certificate": presenting(t, nil)} {
			if err := raftProbe(a.RaftAddr(), cfg); err == nil {
				t.Errorf("%s: Raft port accepted a %s certificate", a.NodeID(), name)
			}
		}
		if got := plaintextProbe(t, a.RaftAddr(), "\x00\x81\xa4Term\x01\n\n"); got != "" && got[0] != 0x15 {
			t.Errorf("%s: plaintext on the Raft port got a non-alert answer %q", a.NodeID(), got)
		}
		agenttest.Eventually(t, 10*time.Second, func() error {
			if n := a.RaftNode().RefusedConnections() - refusedBefore; n < 4 {
				return fmt.Errorf("%s counted %d refusals, want 4", a.NodeID(), n)
			}
			return nil
		})
		if err := raftProbe(a.RaftAddr(), memberCfg); err != nil {
			t.Errorf("%s: Raft port refused a member: %v", a.NodeID(), err)
		}

		// API: the revoked certificate neither reads nor forwards, even
		// with a valid token.
		st, body, err := apiCall(a.APIAddr(), victimCfg, "GET", "/v1/node", "", "", "")
		if err != nil || st != http.StatusForbidden || agenttest.ErrorCode([]byte(body)) != "certificate_revoked" {
			t.Errorf("%s: revoked certificate read: %d %s %v", a.NodeID(), st, body, err)
		}
		st, body, err = apiCall(a.APIAddr(), victimCfg, "POST", "/v1/peers", adminToken, victim, `{"name":"from-removed-`+a.NodeID()+`"}`)
		if err != nil || st != http.StatusForbidden || agenttest.ErrorCode([]byte(body)) != "certificate_revoked" {
			t.Errorf("%s: forwarded request with a revoked certificate: %d %s %v", a.NodeID(), st, body, err)
		}
		if !strings.Contains(body, victim) || strings.Contains(body, victimFP) {
			t.Errorf("%s: the refusal should name the node, not the full fingerprint: %s", a.NodeID(), body)
		}
		// A foreign CA's certificate fails the handshake; plaintext gets
		// no API answer.
		if st, body, err := apiCall(a.APIAddr(), foreignCfg, "GET", "/v1/node", "", "", ""); err == nil {
			t.Errorf("%s: foreign certificate answered %d %s", a.NodeID(), st, body)
		}
		if got := plaintextProbe(t, a.APIAddr(), "GET /v1/node HTTP/1.1\r\nHost: x\r\n\r\n"); strings.Contains(got, "node_id") || strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Errorf("%s: plaintext API request was served: %q", a.NodeID(), got)
		}
		// The removed node's own admin token is revoked with it.
		if st, _, _ := apiCall(a.APIAddr(), presenting(t, nil), "GET", "/v1/node", victimInfo.AdminToken, "", ""); st != http.StatusUnauthorized {
			t.Errorf("%s: the removed node's admin token got %d, want 401", a.NodeID(), st)
		}
		// A member's certificate still reads, and forwards writes.
		if st, body, err := apiCall(a.APIAddr(), memberCfg, "GET", "/v1/node", "", "", ""); err != nil || st != http.StatusOK {
			t.Errorf("%s: member certificate read: %d %s %v", a.NodeID(), st, body, err)
		}
	}
	// A write forwarded with a member's certificate goes through (to
	// whichever node leads now; the public key makes a retry idempotent).
	fwd := fmt.Sprintf(`{"name":"forwarded-by-member","public_key":%q}`, newKey(t))
	agenttest.Eventually(t, 10*time.Second, func() error {
		st, body, err := apiCall(e.leader().APIAddr(), memberCfg, "POST", "/v1/peers", adminToken, member, fwd)
		if err != nil || (st != http.StatusCreated && st != http.StatusOK) {
			return fmt.Errorf("forwarded write from a member: %d %s %v", st, body, err)
		}
		return nil
	})
	for _, a := range survivors {
		if _, ok := e.leader().State().Peer("from-removed-" + a.NodeID()); ok {
			t.Fatal("a write made with a revoked certificate took effect")
		}
	}

	// The cluster keeps working: a write through the follower is
	// forwarded over mutual TLS and replicates.
	e.create(member, "after-removal")
	tc.Stop(victim)
	e.converged()

	// The node comes back with a wiped data dir: it joins with a new
	// certificate, which works, while the old one stays refused.
	delete(tc.Dirs, victim)
	back := tc.Join(victim, leader, joinToken)
	newFP := identityFingerprint(t, nodeIdentity(t, tc, victim))
	if newFP == victimFP {
		t.Fatal("the rejoined node has its old certificate")
	}
	agenttest.Eventually(t, 10*time.Second, func() error {
		for _, a := range []*agent.Agent{leader, tc.Nodes[member], back} {
			c, ok := a.State().NodeCert(victim)
			if !ok || c.Fingerprint != newFP || !a.State().CertRevoked(victimFP) || a.State().CertRevoked(newFP) {
				return fmt.Errorf("%s: certificate state of %s not current", a.NodeID(), victim)
			}
		}
		return nil
	})
	newCfg := presenting(t, nodeIdentity(t, tc, victim))
	for _, a := range survivors {
		if err := raftProbe(a.RaftAddr(), newCfg); err != nil {
			t.Errorf("%s: Raft port refused the rejoined node: %v", a.NodeID(), err)
		}
		if st, body, err := apiCall(a.APIAddr(), newCfg, "GET", "/v1/node", "", "", ""); err != nil || st != http.StatusOK {
			t.Errorf("%s: rejoined node's read: %d %s %v", a.NodeID(), st, body, err)
		}
		if err := raftProbe(a.RaftAddr(), victimCfg); err == nil {
			t.Errorf("%s: the old certificate works again after the rejoin", a.NodeID())
		}
	}
	e.cl[victim] = tc.Client(victim)
	e.create(victim, "after-rejoin")
	d := e.converged()
	agenttest.Eventually(t, 10*time.Second, func() error {
		got, err := e.clusterDigests(victim)
		if err == nil && got != d {
			return fmt.Errorf("cluster digest %s, state %s", got, d)
		}
		return err
	})
}

// TestRevokedAdminTokenRefused: a revoked admin token gets 401 from every
// node, and the token it was made with keeps working.
func TestRevokedAdminTokenRefused(t *testing.T) {
	e := newEnv(t)
	st, body, _ := e.call("n2", "POST", "/v1/cluster/admin-tokens", map[string]string{"name": "temp"})
	if st != http.StatusCreated {
		t.Fatalf("create token: %d %s", st, body)
	}
	var nt httpapi.NewTokenResponse
	if err := json.Unmarshal(body, &nt); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	ca, err := nodeIdentity(t, e.tc, "n1").CACert()
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(ca)
	cfg := &tls.Config{RootCAs: pool}
	status := func(id, tok string) int {
		st, _, err := apiCall(e.tc.Nodes[id].APIAddr(), cfg, "GET", "/v1/peers", tok, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	agenttest.Eventually(t, 10*time.Second, func() error {
		for _, id := range nodeIDs {
			if st := status(id, nt.Token); st != http.StatusOK {
				return fmt.Errorf("new token on %s: %d", id, st)
			}
		}
		return nil
	})
	if st, body, _ := e.call("n3", "DELETE", "/v1/cluster/admin-tokens/"+nt.ID, nil); st != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", st, body)
	}
	agenttest.Eventually(t, 10*time.Second, func() error {
		for _, id := range nodeIDs {
			if st := status(id, nt.Token); st != http.StatusUnauthorized {
				return fmt.Errorf("revoked token on %s: %d", id, st)
			}
		}
		return nil
	})
	for _, id := range nodeIDs {
		if st := status(id, e.cl[id].Token); st != http.StatusOK {
			t.Fatalf("node token on %s after revoking another: %d", id, st)
		}
	}
}
