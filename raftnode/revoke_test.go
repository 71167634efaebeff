package raftnode

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftguard/raftguard/internal/pki"
)

// revokedSet stands in for the replicated revoked set.
type revokedSet struct {
	mu  sync.Mutex
	fps map[string]bool // guarded by mu
}

func (r *revokedSet) add(fp string) {
	r.mu.Lock()
	r.fps[fp] = true
	r.mu.Unlock()
}

func (r *revokedSet) has(fp string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fps[fp]
}

func (r *revokedSet) match(c *x509.Certificate) bool { return r.has(pki.Fingerprint(c)) }

func leafFingerprint(cfg *tls.Config) string { return pki.Fingerprint(cfg.Certificates[0].Leaf) }

// hasConnOf reports whether an open connection's peer holds the
// certificate with fingerprint fp.
func (s *tlsStreamLayer) hasConnOf(fp string) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.live {
		if c.peer != nil && pki.Fingerprint(c.peer) == fp {
			return true
		}
	}
	return false
}

// TestRevokedCertificateRefused: with the TLS configs guarded by a revoked
// set (as the agent does with the replicated one), a revoked certificate is
// refused on accept and on dial, CloseConnections drops connections made
// with it before, and the members keep replicating.
func TestRevokedCertificateRefused(t *testing.T) {
	rs := &revokedSet{fps: map[string]bool{}}
	c := newTestCluster(t, func(cfg *Config) {
		cfg.ServerTLS = pki.RefuseRevoked(cfg.ServerTLS, rs.has)
		cfg.ClientTLS = pki.RefuseRevoked(cfg.ClientTLS, rs.has)
	})
	c.bootstrap(3)
	l := c.leader()
	target := l.ListenAddr()
	goneSrv, goneCli := peerTLS(t, c.ca, "gone")

	// Before revocation the certificate is a member's: a connection made
	// with it is accepted and stays open.
	early, err := tls.Dial("tcp", target, goneCli)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	goneFP := leafFingerprint(goneCli)
	waitFor(t, waitTime, "the connection to be accepted", func() bool { return l.stream.hasConnOf(goneFP) })
	if l.RefusedConnections() != 0 {
		t.Fatalf("%d connections refused before any revocation", l.RefusedConnections())
	}

	rs.add(goneFP)
	if n := l.CloseConnections(rs.match); n != 1 {
		t.Fatalf("closed %d connections, want the revoked one", n)
	}
	if l.stream.hasConnOf(goneFP) {
		t.Fatal("the revoked connection is still open")
	}
	_ = early.SetReadDeadline(time.Now().Add(waitTime))
	if _, err := early.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection made before revocation: read %v, want EOF (closed)", err)
	}

	// A new connection with it is refused at the handshake.
	refused := l.RefusedConnections()
	conn, err := tls.Dial("tcp", target, goneCli)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(waitTime))
		// TLS 1.3: the server judges the client certificate after the
		// client's side of the handshake; the refusal shows on read.
		if _, err = conn.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Errorf("revoked client: read %v, want a bad certificate alert", err)
		}
		conn.Close()
	}
	waitFor(t, waitTime, "the refusal to be counted", func() bool { return l.RefusedConnections() > refused })

	// Dialling a server that presents it fails at dial time.
	stranger, err := newTLSStreamLayer("127.0.0.1:0", "", goneSrv, goneCli, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := l.stream.Dial(raft.ServerAddress(stranger.Addr().String()), 5*time.Second); !errors.Is(err, pki.ErrRevokedCert) {
		t.Errorf("dial to a revoked server: err = %v, want ErrRevokedCert", err)
	}

	// Members are not affected.
	if n := l.CloseConnections(rs.match); n != 0 {
		t.Errorf("a second pass closed %d member connections", n)
	}
	want := c.applyN("e", 10)
	c.waitReplicated(want)
}

// TestRevokedMemberLosesReplication: revoking a follower's certificate cuts
// it off (its open connections are closed, new ones refused) while the other
// two go on.
func TestRevokedMemberLosesReplication(t *testing.T) {
	rs := &revokedSet{fps: map[string]bool{}}
	var mu sync.Mutex
	certs := map[string]string{} // node id -> fingerprint
	c := newTestCluster(t, func(cfg *Config) {
		mu.Lock()
		certs[cfg.NodeID] = leafFingerprint(cfg.ClientTLS)
		mu.Unlock()
		cfg.ServerTLS = pki.RefuseRevoked(cfg.ServerTLS, rs.has)
		cfg.ClientTLS = pki.RefuseRevoked(cfg.ClientTLS, rs.has)
	})
	c.bootstrap(3)
	c.waitReplicated(c.applyN("a", 5))
	var victim *testNode
	for _, f := range c.followers() {
		victim = f
	}
	mu.Lock()
	rs.add(certs[victim.id])
	mu.Unlock()
	closed := 0
	for _, n := range c.live() {
		closed += n.CloseConnections(rs.match)
	}
	if closed == 0 {
		t.Fatal("no connection of the revoked follower was open")
	}
	var others []*testNode
	for _, n := range c.live() {
		if n != victim {
			others = append(others, n)
		}
	}
	want := c.applyN("b", 5)
	c.waitReplicated(want, others...)
	if got, _ := victim.fsm.snapshot(); hasAll(got, want) {
		t.Fatal("the revoked follower still receives entries")
	}
	if l := c.leader(); l == victim {
		t.Fatal("the revoked follower took over")
	}
}
