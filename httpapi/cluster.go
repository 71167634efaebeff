package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

func (s *Server) health(w http.ResponseWriter, r *request) error {
	st := s.b.Status()
	writeJSON(w, http.StatusOK, Health{Status: "ok", NodeID: st.NodeID, Role: st.Role, LeaderID: st.LeaderID})
	return nil
}

func (s *Server) node(w http.ResponseWriter, r *request) error {
	writeJSON(w, http.StatusOK, s.status())
	return nil
}

// status is the node's own status with the digest of its replicated state
// (computed once per applied command, so cheap to ask for repeatedly).
func (s *Server) status() NodeStatus {
	st := s.b.Status()
	st.StateIndex, st.StateDigest = s.b.State().Digest()
	return st
}

// cluster asks every member for its own status, in parallel, briefly.
func (s *Server) cluster(w http.ResponseWriter, r *request) error {
	servers, err := s.b.Servers()
	if err != nil {
		return err
	}
	self := s.status()
	out := ClusterStatus{LeaderID: self.LeaderID, Term: self.Term, ClusterVersion: s.b.State().ClusterVersion(), Nodes: make([]ClusterNode, len(servers))}
	var wg sync.WaitGroup
	for i, srv := range servers {
		cn := &out.Nodes[i]
		cn.NodeID, cn.RaftAddr, cn.Voter = srv.ID, srv.RaftAddr, srv.Voter
		if srv.ID == self.NodeID {
			cn.NodeStatus, cn.Reachable = self, true
			continue
		}
		n, ok := s.b.State().Node(srv.ID)
		if !ok {
			cn.Error = "no API address registered"
			continue
		}
		cn.APIAddr = n.APIAddr
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.b.NodeStatusAt(r.Context(), n.APIAddr)
			if err != nil {
				cn.Error = err.Error()
				return
			}
			cn.NodeStatus, cn.Reachable = st, true
			cn.RaftAddr = srv.RaftAddr
		}()
	}
	wg.Wait()
	slices.SortFunc(out.Nodes, func(a, b ClusterNode) int { return strings.Compare(a.NodeID, b.NodeID) })
	for _, n := range out.Nodes {
		if n.VIPHolder {
			out.VIPHolder = n.NodeID
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) transferLeader(w http.ResponseWriter, r *request) error {
	var req TransferRequest
	if len(strings.TrimSpace(string(r.body))) > 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	svc, err := s.service()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	id, err := svc.HandOver(ctx, req.To)
	if err != nil {
		if ae := toAPIError(err); ae.Status == http.StatusInternalServerError {
			return errorf(http.StatusServiceUnavailable, "transfer_failed", "leadership transfer did not complete: %v; retry", err)
		}
		return err
	}
	// This node no longer leads: the record goes to the new leader.
	s.auditEvent(r, "transfer-leader", id, "ok")
	writeJSON(w, http.StatusOK, TransferResponse{LeaderID: id})
	return nil
}

func (s *Server) removeNode(w http.ResponseWriter, r *request) error {
	svc, err := s.service()
	if err != nil {
		return err
	}
	if err := svc.RemoveNode(r.PathValue("id")); err != nil {
		return err
	}
	s.auditEvent(r, "remove-node", r.PathValue("id"), "ok")
	s.wrote(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
