package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func fp(i int) string {
	sum := sha256.Sum256([]byte{byte(i >> 8), byte(i)})
	return hex.EncodeToString(sum[:])
}

func (h *harness) register(id string) {
	h.t.Helper()
	h.mustOK(CmdRegisterNode, RegisterNode{ID: id, RaftAddr: "192.0.2.1:7000", APIAddr: "192.0.2.1:7443", At: t0})
}

func TestNodeCertRevokedOnRemove(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	h.register("n2")
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "n2", Fingerprint: fp(1), NotAfter: t0.Add(time.Hour), At: t0})
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "n3", Fingerprint: fp(2), At: t0}) // issued, not registered yet
	if c, ok := h.f.NodeCert("n2"); !ok || c.Fingerprint != fp(1) || h.f.CertRevoked(fp(1)) {
		t.Fatalf("n2 cert %+v %v, revoked %v", c, ok, h.f.CertRevoked(fp(1)))
	}

	h.mustOK(CmdRemoveNode, RemoveNode{ID: "n2", At: t0})
	if !h.f.CertRevoked(fp(1)) {
		t.Fatal("removal did not revoke the node's certificate")
	}
	if _, ok := h.f.NodeCert("n2"); ok {
		t.Fatal("removed node keeps a certificate record")
	}
	if h.f.CertRevoked(fp(2)) {
		t.Fatal("another node's certificate was revoked")
	}
	// A node that only got its certificate can be removed too.
	h.mustOK(CmdRemoveNode, RemoveNode{ID: "n3", At: t0})
	if !h.f.CertRevoked(fp(2)) {
		t.Fatal("removing an unregistered node did not revoke its certificate")
	}

	// The revoked certificate cannot come back; a new one for the same id
	// (a rejoin) is fine.
	before := h.snapshotBytes()
	res := h.apply(CmdSetNodeCert, SetNodeCert{ID: "n2", Fingerprint: fp(1), At: t0})
	if err, ok := res.(error); !ok || !errors.Is(err, ErrInvalid) {
		t.Fatalf("revoked certificate recorded again: %v", res)
	}
	if !bytes.Equal(before, h.snapshotBytes()) {
		t.Fatal("a rejected command changed the state")
	}
	h.register("n2")
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "n2", Fingerprint: fp(3), At: t0})
	if h.f.CertRevoked(fp(3)) || !h.f.CertRevoked(fp(1)) {
		t.Fatal("rejoin: wrong revocation state")
	}
	if got := h.f.RevokedCerts(); len(got) != 2 || got[0].NodeID == "" || got[0].RevokedAt.IsZero() {
		t.Fatalf("revoked set %+v", got)
	}
}

func TestNodeCertReplaced(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "n1", Fingerprint: fp(1), At: t0})
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "n1", Fingerprint: fp(1), At: t0}) // same again: no-op
	if h.f.CertRevoked(fp(1)) {
		t.Fatal("recording the same certificate twice revoked it")
	}
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "n1", Fingerprint: fp(2), At: t0})
	if !h.f.CertRevoked(fp(1)) || h.f.CertRevoked(fp(2)) {
		t.Fatal("a replaced certificate must be revoked, the new one not")
	}
	res := h.apply(CmdSetNodeCert, SetNodeCert{ID: "n2", Fingerprint: fp(2), At: t0})
	if err, ok := res.(error); !ok || !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("two nodes with one certificate: %v", res)
	}
	for _, bad := range []SetNodeCert{
		{ID: "n1", Fingerprint: "abc", At: t0},
		{ID: "n1", Fingerprint: strings.ToUpper(fp(5)), At: t0},
		{ID: "bad/id", Fingerprint: fp(5), At: t0},
	} {
		if err, ok := h.apply(CmdSetNodeCert, bad).(error); !ok || !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v accepted: %v", bad, err)
		}
	}
}

func TestRevokedSetDropsExpired(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "a", Fingerprint: fp(1), NotAfter: t0.Add(time.Hour), At: t0})
	h.mustOK(CmdRemoveNode, RemoveNode{ID: "a", At: t0})
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "b", Fingerprint: fp(2), At: t0})
	later := t0.Add(2 * time.Hour)
	h.mustOK(CmdRemoveNode, RemoveNode{ID: "b", At: later})
	if h.f.CertRevoked(fp(1)) {
		t.Fatal("an expired certificate stays in the revoked set")
	}
	if !h.f.CertRevoked(fp(2)) {
		t.Fatal("a certificate without a known expiry left the revoked set")
	}
}

func TestSetNodeCertIsIgnorable(t *testing.T) {
	if CmdSetNodeCert&IgnorableFlag == 0 {
		t.Fatal("older nodes would stop on set-node-cert")
	}
	if CmdSetNodeCert.String() != "set-node-cert" {
		t.Fatal(CmdSetNodeCert.String())
	}
}

func TestSnapshotKeepsCerts(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "n1", Fingerprint: fp(1), At: t0})
	h.mustOK(CmdSetNodeCert, SetNodeCert{ID: "n2", Fingerprint: fp(2), At: t0})
	h.mustOK(CmdRemoveNode, RemoveNode{ID: "n2", At: t0})
	snap := h.snapshotBytes()

	other := New(nil)
	if err := other.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !other.CertRevoked(fp(2)) || other.CertRevoked(fp(1)) {
		t.Fatal("restored revoked set differs")
	}
	if c, ok := other.NodeCert("n1"); !ok || c.Fingerprint != fp(1) {
		t.Fatal("restored node certificate missing")
	}
	var buf bytes.Buffer
	if err := other.WriteSnapshot(&buf); err != nil || !bytes.Equal(buf.Bytes(), snap) {
		t.Fatalf("round trip differs (%v)", err)
	}

	// Damaged: a certificate both current and revoked; one held by two nodes.
	for _, bad := range []string{
		strings.Replace(string(snap), fp(1), fp(2), 1),
		strings.Replace(string(snap), `"fingerprint":"`+fp(1), `"fingerprint":"xyz`, 1),
	} {
		if bad == string(snap) {
			t.Fatal("test did not alter the snapshot")
		}
		if err := ValidateSnapshot(strings.NewReader(bad)); err == nil {
			t.Fatal("damaged certificate entries accepted")
		}
	}
}

// TestOldSnapshotLoads: a snapshot written before node certificates were
// tracked (no node_certs, no revoked_certs) still loads, with none.
func TestOldSnapshotLoads(t *testing.T) {
	h := newHarness(t, "10.99.0.0/24", "")
	h.register("n1")
	if _, err := h.addPeer("p", seqKey(1)); err != nil {
		t.Fatal(err)
	}
	snap := h.snapshotBytes()
	if bytes.Contains(snap, []byte("node_certs")) || bytes.Contains(snap, []byte("revoked_certs")) {
		t.Fatal("a state without certificates writes certificate fields: older nodes' files differ")
	}
	other := New(nil)
	if err := other.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if len(other.NodeCerts()) != 0 || len(other.RevokedCerts()) != 0 {
		t.Fatal("certificates out of nowhere")
	}
	// Removing a node registered before certificates were tracked works
	// as it always did.
	h.mustOK(CmdRemoveNode, RemoveNode{ID: "n1", At: t0})
	if len(h.f.RevokedCerts()) != 0 {
		t.Fatal("revoked set from a node without a certificate record")
	}
}
