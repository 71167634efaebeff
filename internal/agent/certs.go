package agent

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/pki"
)

// certsChanged is called after a command that may have revoked a node
// certificate; it wakes watchRevocations without blocking.
func (a *Agent) certsChanged(t fsm.CommandType) {
	if t != 0 && t != fsm.CmdRemoveNode && t != fsm.CmdSetNodeCert {
		return
	}
	select {
	case a.certCheck <- struct{}{}:
	default:
	}
}

// revoked reports whether a peer's certificate is revoked in the local
// replica. New handshakes check it through the TLS configs.
func (a *Agent) revoked(c *x509.Certificate) bool {
	return a.state.CertRevoked(pki.Fingerprint(c))
}

// watchRevocations closes the Raft connections that were made with a
// certificate revoked since, so a removed node loses them at once rather than
// when they next break.
func (a *Agent) watchRevocations() {
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
			return
		case <-a.certCheck:
		}
		if n := a.raft.CloseConnections(a.revoked); n > 0 {
			a.log.Info("closed Raft connections made with revoked node certificates", "connections", n)
		}
	}
}

// recordOwnCert makes sure the replicated state knows this node's
// certificate, so that removing the node revokes it. Joining nodes are
// recorded when their certificate is issued; this covers the bootstrap node
// and nodes of clusters created before certificates were recorded. Leader
// only.
func (a *Agent) recordOwnCert() error {
	cert, err := a.ident.Certificate()
	if err != nil {
		return err
	}
	fp := pki.Fingerprint(cert)
	if c, ok := a.state.NodeCert(a.node.NodeID); ok && c.Fingerprint == fp {
		return nil
	}
	if a.state.CertRevoked(fp) {
		return fmt.Errorf("this node's certificate has been revoked: the node was removed from the cluster; wipe its data dir and join it again")
	}
	if _, err := a.Apply(fsm.CmdSetNodeCert, fsm.SetNodeCert{ID: a.node.NodeID, Fingerprint: fp, NotAfter: cert.NotAfter.UTC(), At: time.Now().UTC()}); err != nil {
		return fmt.Errorf("record node certificate: %w", err)
	}
	return nil
}
