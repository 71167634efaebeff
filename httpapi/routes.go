package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/raftguard/raftguard/fsm"
)

func (s *Server) register() {
	s.handle("GET /v1/health", public, local, s.health)
	s.handle("GET /v1/node", admin, local, s.node)
	s.handle("GET /v1/cluster", admin, read, s.cluster)
	s.handle("POST /v1/cluster/transfer-leader", admin, write, s.transferLeader)
	s.handle("DELETE /v1/cluster/nodes/{id}", admin, write, s.removeNode)
	s.handle("GET /v1/cluster/token", tokenOnly, read, s.joinToken)
	s.handle("POST /v1/cluster/token/rotate", admin, write, s.rotateJoinToken)
	s.handle("GET /v1/cluster/admin-tokens", admin, read, s.listAdminTokens)
	s.handle("POST /v1/cluster/admin-tokens", admin, write, s.createAdminToken)
	s.handle("DELETE /v1/cluster/admin-tokens/{id}", admin, write, s.revokeAdminToken)
	s.handle("GET /v1/cluster/snapshot", tokenOnly, read, s.saveSnapshot, withTimeout(10*time.Minute))
	s.handle("POST /v1/cluster/snapshot/restore", tokenOnly, write, s.restoreSnapshot,
		withMaxBody(s.cfg.MaxSnapshotBody), withTimeout(10*time.Minute))
	s.handle("POST /v1/cluster/join/certificate", joiner, write, s.joinCertificate, withPrepare(s.checkJoinerProtocol))
	s.handle("POST /v1/cluster/join", joiner, write, s.join, withPrepare(chainPrepare(s.checkJoinerProtocol, s.prepareJoin)))
	s.handle("GET /v1/cluster/settings", admin, read, s.getSettings)
	s.handle("PATCH /v1/cluster/settings", admin, write, s.updateSettings, withPrepare(s.requireCommand(fsm.CmdUpdateSettings)))
	s.handle("GET /v1/interface", admin, read, s.iface)
	s.handle("POST /v1/keys", admin, local, s.keys)
	s.handle("GET /v1/peers", admin, read, s.listPeers)
	s.handle("POST /v1/peers", admin, write, s.createPeer, withPrepare(s.prepareCreate))
	s.handle("POST /v1/peers/bulk", admin, write, s.bulkCreatePeers, withPrepare(s.requireCommand(fsm.CmdAddPeers)), withMaxBody(16<<20), withTimeout(5*time.Minute))
	s.handle("GET /v1/peers/{name}", admin, read, s.getPeer)
	s.handle("PATCH /v1/peers/{name}", admin, write, s.updatePeer)
	s.handle("DELETE /v1/peers/{name}", admin, write, s.deletePeer)
	s.handle("GET /v1/peers/{name}/config", admin, read, s.peerConfig)
	s.handle("GET /v1/audit", admin, read, s.auditLog)
	s.handle("POST /v1/cluster/audit/refusals", public, local, s.auditRefusals)
	s.handle("GET /metrics", admin, local, s.serveMetrics)
	s.registerConsole()
	s.mux.HandleFunc("/", s.noRoute)
}

// methods are the HTTP methods the API uses, for 405 answers.
var methods = []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete}

// noRoute answers a request no route matched: 405 with Allow when the path
// exists under another method, 404 otherwise.
func (s *Server) noRoute(hw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: hw}
	defer func() { s.metrics.route(unmatchedRoute)(w.code(), time.Since(start)) }()
	w.Header().Set(HeaderNode, s.b.NodeID())
	var allow []string
	for _, m := range methods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pat := s.mux.Handler(probe); pat != "" && pat != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, errorf(http.StatusNotFound, "no_route", "no route %s %s", r.Method, r.URL.Path))
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }
