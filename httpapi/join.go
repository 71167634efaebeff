package httpapi

import (
	"crypto/subtle"
	"fmt"
	"net/http"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/pki"
)

// checkJoinToken verifies a join token against the cluster's, in constant
// time, counting failures per source.
func (s *Server) checkJoinToken(r *request, token string) error {
	if !s.b.State().Initialized() {
		// The bootstrap node has not applied its first entry yet: the
		// joiner retries.
		return fsm.ErrNotInitialized
	}
	cur := s.b.State().Cluster().JoinToken
	_, want, err1 := pki.ParseJoinToken(cur)
	fp, got, err2 := pki.ParseJoinToken(token)
	ok := err1 == nil && err2 == nil &&
		subtle.ConstantTimeCompare([]byte(pki.HashToken(want)), []byte(pki.HashToken(got))) == 1
	if ok {
		if cfp, err := s.caFingerprint(); err == nil && cfp == fp {
			return nil
		}
	}
	if !forwardedByNode(r.Request) { // a forwarding node counts it against the joiner
		s.limit.fail(sourceIP(r.Request))
	}
	s.log.Warn("join refused: invalid join token", "source", auditSource(r.Request))
	s.noteRefusal(auditSource(r.Request), "join", "", "bad_join_token")
	return errorf(http.StatusUnauthorized, "bad_join_token", "the join token is not valid for this cluster (get the current one with: raftguard cluster token)")
}

// decodeJoin decodes a join request and checks its token, then its node id.
func decodeJoin[T any](s *Server, r *request, fields func(*T) (token, nodeID string)) (T, error) {
	var req T
	if err := decode(r, &req); err != nil {
		return req, err
	}
	token, id := fields(&req)
	if err := s.checkJoinToken(r, token); err != nil {
		return req, err
	}
	if err := fsm.ValidateName(id); err != nil {
		return req, fmt.Errorf("node id: %w", err)
	}
	return req, nil
}

func (s *Server) joinCertificate(w http.ResponseWriter, r *request) error {
	req, err := decodeJoin(s, r, func(q *JoinCertRequest) (string, string) { return q.Token, q.NodeID })
	if err != nil {
		return err
	}
	svc, err := s.service()
	if err != nil {
		return err
	}
	out, err := svc.IssueJoinCertificate(req)
	if err != nil {
		return s.joinRefused(r, req.NodeID, err)
	}
	s.auditEvent(r, "join-certificate", req.NodeID, "ok")
	s.wrote(w)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) join(w http.ResponseWriter, r *request) error {
	req, err := decodeJoin(s, r, func(q *JoinRequest) (string, string) { return q.Token, q.NodeID })
	if err != nil {
		return err
	}
	svc, err := s.service()
	if err != nil {
		return err
	}
	out, err := svc.Join(req)
	if err != nil {
		return s.joinRefused(r, req.NodeID, err)
	}
	s.auditEvent(r, "join", req.NodeID, "ok")
	s.wrote(w)
	writeJSON(w, http.StatusOK, out)
	return nil
}
