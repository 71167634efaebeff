package pki

import (
	"errors"
	"sync"
	"testing"
)

// revokedSet is a RevokedFunc backed by a set that a test can change.
type revokedSet struct {
	mu  sync.Mutex
	fps map[string]bool
}

func (r *revokedSet) revoke(id *Identity, t *testing.T) {
	t.Helper()
	c, err := id.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.fps[Fingerprint(c)] = true
	r.mu.Unlock()
}

func (r *revokedSet) has(fp string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fps[fp]
}

func TestRefuseRevoked(t *testing.T) {
	ca := mustCA(t, "cluster")
	foreign := mustCA(t, "foreign")
	a, b, gone := mustIdentity(t, ca, "a"), mustIdentity(t, ca, "b"), mustIdentity(t, ca, "gone")
	rs := &revokedSet{fps: map[string]bool{}}
	rs.revoke(gone, t)

	aSrv, aCli := peerConfigs(t, a)
	aSrv, aCli = RefuseRevoked(aSrv, rs.has), RefuseRevoked(aCli, rs.has)
	bSrv, bCli := peerConfigs(t, b)
	bSrv, bCli = RefuseRevoked(bSrv, rs.has), RefuseRevoked(bCli, rs.has)
	goneSrv, goneCli := peerConfigs(t, gone)
	_, xCli := peerConfigs(t, mustIdentity(t, foreign, "x"))

	if _, _, serr, cerr := handshake(t, aSrv, bCli); serr != nil || cerr != nil {
		t.Fatalf("members: server %v, client %v", serr, cerr)
	}
	if _, _, serr, cerr := handshake(t, bSrv, aCli); serr != nil || cerr != nil {
		t.Fatalf("members: server %v, client %v", serr, cerr)
	}
	// The removed node dials a member: the member refuses it.
	if _, _, serr, cerr := handshake(t, aSrv, goneCli); !errors.Is(serr, ErrRevokedCert) || cerr == nil {
		t.Fatalf("revoked client: server %v, client %v", serr, cerr)
	}
	// A member dials the removed node: the member refuses it.
	if _, _, _, cerr := handshake(t, goneSrv, aCli); !errors.Is(cerr, ErrRevokedCert) {
		t.Fatalf("revoked server: client %v", cerr)
	}
	// The chain check still comes first.
	if _, _, serr, _ := handshake(t, aSrv, xCli); serr == nil || errors.Is(serr, ErrRevokedCert) {
		t.Fatalf("foreign client: server %v", serr)
	}

	// The API server: a certificate is optional, a revoked one refused.
	api, err := a.APIServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	api = RefuseRevoked(api, rs.has)
	noCert := bCli.Clone()
	noCert.Certificates = nil
	if _, _, serr, cerr := handshake(t, api, noCert); serr != nil || cerr != nil {
		t.Fatalf("API without a client certificate: server %v, client %v", serr, cerr)
	}
	if _, _, serr, _ := handshake(t, api, goneCli); !errors.Is(serr, ErrRevokedCert) {
		t.Fatalf("API, revoked client: server %v", serr)
	}

	// Revocation takes effect on the next handshake.
	rs.revoke(b, t)
	if _, _, serr, _ := handshake(t, aSrv, bCli); !errors.Is(serr, ErrRevokedCert) {
		t.Fatalf("after revoking b: server %v", serr)
	}
	if err := CheckRevoked(nil, rs.has); err != nil {
		t.Fatal(err)
	}
}
