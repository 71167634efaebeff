package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/pki"
	"github.com/raftguard/raftguard/internal/wgkey"
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
	s.handle("GET /v1/peers/{name}", admin, read, s.getPeer)
	s.handle("PATCH /v1/peers/{name}", admin, write, s.updatePeer)
	s.handle("DELETE /v1/peers/{name}", admin, write, s.deletePeer)
	s.handle("GET /v1/peers/{name}/config", admin, read, s.peerConfig)
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
			st, err := s.fetchNode(r.Context(), n.APIAddr)
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

func (s *Server) fetchNode(ctx context.Context, addr string) (NodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/node", nil)
	if err != nil {
		return NodeStatus{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return NodeStatus{}, fmt.Errorf("unreachable: %w", errors.Unwrap(err))
	}
	defer resp.Body.Close()
	var st NodeStatus
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("answered %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
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
	s.wrote(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) joinToken(w http.ResponseWriter, r *request) error {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, JoinTokenResponse{Token: s.b.State().Cluster().JoinToken})
	return nil
}

func (s *Server) rotateJoinToken(w http.ResponseWriter, r *request) error {
	fp, err := s.caFingerprint()
	if err != nil {
		return err
	}
	tok, err := pki.NewJoinToken(fp)
	if err != nil {
		return err
	}
	if _, err := s.apply(w, fsm.CmdSetJoinToken, fsm.SetJoinToken{Token: tok, At: time.Now().UTC()}); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, JoinTokenResponse{Token: tok})
	return nil
}

func (s *Server) caFingerprint() (string, error) {
	ca, err := pki.ParseCA([]byte(s.b.State().Cluster().CACertPEM), []byte(s.b.State().Cluster().CAKeyPEM))
	if err != nil {
		return "", fmt.Errorf("cluster CA: %w", err)
	}
	return ca.Fingerprint(), nil
}

func (s *Server) listAdminTokens(w http.ResponseWriter, r *request) error {
	out := []TokenView{}
	for _, t := range s.b.State().AdminTokens() {
		out = append(out, TokenView{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

func (s *Server) createAdminToken(w http.ResponseWriter, r *request) error {
	var req struct {
		Name string `json:"name"`
	}
	if len(strings.TrimSpace(string(r.body))) > 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	if req.Name != "" {
		if err := fsm.ValidateName(req.Name); err != nil {
			return err
		}
	}
	tok, err := pki.NewAdminToken()
	if err != nil {
		return err
	}
	id := "tok-" + pki.HashToken(tok)[:12]
	at := fsm.AdminToken{ID: id, Name: req.Name, Hash: pki.HashToken(tok)}
	now := time.Now().UTC()
	if _, err := s.apply(w, fsm.CmdAddAdminToken, fsm.AddAdminToken{Token: at, At: now}); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, NewTokenResponse{TokenView: TokenView{ID: id, Name: req.Name, CreatedAt: now}, Token: tok})
	return nil
}

func (s *Server) revokeAdminToken(w http.ResponseWriter, r *request) error {
	id := r.PathValue("id")
	if _, err := s.apply(w, fsm.CmdRevokeAdminToken, fsm.RevokeAdminToken{ID: id, At: time.Now().UTC()}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

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
	s.log.Warn("join refused: invalid join token", "source", sourceIP(r.Request))
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
		return err
	}
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
		return err
	}
	s.wrote(w)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) iface(w http.ResponseWriter, r *request) error {
	st := s.b.State()
	set := st.Settings()
	total, enabled := st.PeerCounts()
	writeJSON(w, http.StatusOK, InterfaceView{
		PublicKey:  set.PublicKey,
		ListenPort: set.ListenPort,
		Addresses:  set.ServerAddresses(),
		VIPs:       set.VIPs,
		Endpoint:   set.Endpoint,
		MTU:        set.MTU,
		Peers:      total,
		Enabled:    enabled,
	})
	return nil
}

func (s *Server) keys(w http.ResponseWriter, r *request) error {
	kp, err := wgkey.Generate()
	if err != nil {
		return err
	}
	psk, err := wgkey.Preshared()
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, Keys{PrivateKey: kp.Private, PublicKey: kp.Public, PresharedKey: psk})
	return nil
}

func (s *Server) listPeers(w http.ResponseWriter, r *request) error {
	peers := s.b.State().Peers()
	stats := s.b.PeerStats()
	out := make([]PeerView, 0, len(peers))
	for _, p := range peers {
		out = append(out, viewPeer(p, statsFor(stats, p.PublicKey)))
	}
	writeJSON(w, http.StatusOK, map[string][]PeerView{"peers": out})
	return nil
}

func statsFor(m map[string]PeerStats, key string) *PeerStats {
	if st, ok := m[key]; ok {
		return &st
	}
	return nil
}

func (s *Server) lookupPeer(name string) (fsm.Peer, error) {
	p, ok := s.b.State().Peer(name)
	if !ok {
		return p, errorf(http.StatusNotFound, "not_found", "no peer named %q", name)
	}
	return p, nil
}

func (s *Server) getPeer(w http.ResponseWriter, r *request) error {
	p, err := s.lookupPeer(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewPeer(p, statsFor(s.b.PeerStats(), p.PublicKey)))
	return nil
}

func parsePrefixes(field string, in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		p, err := fsm.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// genKeys are the keys generated for a create without a public key.
type genKeys struct {
	private, public, psk string
}

// header encodes the keys for headerGenerated: "PRIVATE PUBLIC [PRESHARED]".
// The public key travels too, so that the leader need not derive it again
// (an X25519 multiplication per create).
func (g *genKeys) header() string {
	if g.psk == "" {
		return g.private + " " + g.public
	}
	return g.private + " " + g.public + " " + g.psk
}

// parseGenerated decodes headerGenerated. Errors never echo the value. The
// public key is taken as the forwarding node sent it: a caller that forges
// a mismatched pair only gets a client config that does not work.
func parseGenerated(v string) (*genKeys, error) {
	parts := strings.Fields(v)
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("%w: malformed generated keys", fsm.ErrInvalid)
	}
	for _, k := range parts {
		if err := fsm.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("generated keys: %w", err)
		}
	}
	g := &genKeys{private: parts[0], public: parts[1]}
	if len(parts) == 3 {
		g.psk = parts[2]
	}
	return g, nil
}

// prepareCreate runs on the node that received a create. It checks the
// body and, when it names no public key, generates the key pair (and a
// preshared key unless preshared_key is given) once, so that every try of
// the request, here or on the leader, proposes the same peer.
func (s *Server) prepareCreate(r *request) error {
	if v := r.Header.Get(headerGenerated); v != "" && forwardedByNode(r.Request) {
		g, err := parseGenerated(v)
		if err != nil {
			return err
		}
		r.gen = g
		return nil
	}
	req, err := parseCreate(r)
	if err != nil {
		return err
	}
	if req.PublicKey != nil {
		return nil
	}
	kp, err := wgkey.Generate()
	if err != nil {
		return err
	}
	g := &genKeys{private: kp.Private, public: kp.Public}
	if req.PresharedKey == nil {
		if g.psk, err = wgkey.Preshared(); err != nil {
			return err
		}
	}
	r.gen = g
	return nil
}

// parseCreate decodes and checks a create's body as far as that can be done
// without the state.
func parseCreate(r *request) (CreatePeerRequest, error) {
	var req CreatePeerRequest
	if err := decode(r, &req); err != nil {
		return req, err
	}
	if err := fsm.ValidateName(req.Name); err != nil {
		return req, err
	}
	if req.PublicKey != nil {
		if err := fsm.ValidateKey(*req.PublicKey); err != nil {
			return req, fmt.Errorf("public_key: %w", err)
		}
	}
	if req.PresharedKey != nil && *req.PresharedKey != "" {
		if err := fsm.ValidateKey(*req.PresharedKey); err != nil {
			return req, fmt.Errorf("preshared_key: %w", err)
		}
	}
	return req, nil
}

func (s *Server) createPeer(w http.ResponseWriter, r *request) error {
	req, err := parseCreate(r)
	if err != nil {
		return err
	}
	cmd := fsm.AddPeer{Name: req.Name, Enabled: true, At: time.Now().UTC()}
	if req.Enabled != nil {
		cmd.Enabled = *req.Enabled
	}
	switch {
	case req.PublicKey != nil:
		cmd.PublicKey = *req.PublicKey
	case r.gen != nil:
		cmd.PublicKey, cmd.PresharedKey = r.gen.public, r.gen.psk
	default:
		return errorf(http.StatusInternalServerError, "internal", "no key was generated for the peer")
	}
	if req.PresharedKey != nil {
		cmd.PresharedKey = *req.PresharedKey
	}
	set := s.b.State().Settings()
	if cmd.PublicKey == set.PublicKey {
		return fmt.Errorf("%w: public_key is the server's own public key", fsm.ErrDuplicateKey)
	}
	for _, a := range req.Addresses {
		p, err := fsm.ParseHostAddress(a)
		if err != nil {
			return fmt.Errorf("addresses: %w", err)
		}
		cmd.Addresses = append(cmd.Addresses, p)
	}
	routes, err := parsePrefixes("allowed_ips", req.AllowedIPs)
	if err != nil {
		return err
	}
	if err := fsm.ValidatePeerRoutes(s.b.State().RouteContext(), routes); err != nil {
		return err
	}
	if len(routes) > 0 {
		cmd.AllowedIPs = routes
	}
	if _, exists := s.b.State().Peer(cmd.Name); !exists && cmd.Enabled {
		if err := s.checkPeerLimit(); err != nil {
			return err
		}
	}
	res, err := s.apply(w, fsm.CmdAddPeer, cmd)
	if err != nil {
		return err
	}
	out := res.(fsm.AddPeerResult)
	resp := CreatePeerResponse{PeerView: viewPeer(out.Peer, nil)}
	// The peer exists with keys generated for this very request: an
	// earlier try of it created the peer (its answer was lost), so this is
	// still the creation, and the caller gets the private key.
	ours := r.gen != nil && out.Peer.PublicKey == r.gen.public
	status := http.StatusOK
	if out.Created || ours {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/peers/"+url.PathEscape(out.Peer.Name))
		if ours {
			resp.PrivateKey = r.gen.private
			resp.Config = ClientConfig(set, out.Peer, r.gen.private, out.Peer.PresharedKey)
			w.Header().Set("Cache-Control", "no-store")
		}
	}
	writeJSON(w, status, resp)
	return nil
}

func (s *Server) updatePeer(w http.ResponseWriter, r *request) error {
	name := r.PathValue("name")
	var req UpdatePeerRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	cmd := fsm.UpdatePeer{Name: name, Enabled: req.Enabled, PresharedKey: req.PresharedKey, At: time.Now().UTC()}
	if req.PresharedKey != nil && *req.PresharedKey != "" {
		if err := fsm.ValidateKey(*req.PresharedKey); err != nil {
			return fmt.Errorf("preshared_key: %w", err)
		}
	}
	if req.AllowedIPs != nil {
		routes, err := parsePrefixes("allowed_ips", *req.AllowedIPs)
		if err != nil {
			return err
		}
		if err := fsm.ValidatePeerRoutes(s.b.State().RouteContext(), routes); err != nil {
			return err
		}
		cmd.AllowedIPs = &routes
	}
	if req.Enabled != nil && *req.Enabled {
		if p, ok := s.b.State().Peer(name); ok && !p.Enabled {
			if err := s.checkPeerLimit(); err != nil {
				return err
			}
		}
	}
	// No check against the local replica first: a leader elected a moment
	// ago may not have applied every committed entry yet. The state
	// machine answers not found in log order.
	res, err := s.apply(w, fsm.CmdUpdatePeer, cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewPeer(res.(fsm.Peer), nil))
	return nil
}

// checkPeerLimit refuses one more enabled peer when this node's data plane
// already holds as many as it can.
func (s *Server) checkPeerLimit() error {
	if s.cfg.PeerLimit == nil {
		return nil
	}
	limit := s.cfg.PeerLimit()
	if limit <= 0 {
		return nil
	}
	if _, enabled := s.b.State().PeerCounts(); enabled >= limit {
		return errorf(http.StatusUnprocessableEntity, "peer_limit",
			"the cluster holds %d enabled peers, the most this node's data plane can serve; disable or delete peers first, or run the kernel data plane", enabled)
	}
	return nil
}

func (s *Server) deletePeer(w http.ResponseWriter, r *request) error {
	name := r.PathValue("name")
	// As in updatePeer, the state machine decides whether the peer
	// exists, in log order.
	_, err := s.apply(w, fsm.CmdDeletePeer, fsm.DeletePeer{Name: name, At: time.Now().UTC()})
	if err != nil && r.attempt > 0 && isNotFound(err) {
		// An earlier try whose outcome was unknown deleted the peer.
		err = nil
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func isNotFound(err error) bool {
	return errors.Is(err, fsm.ErrNotFound) || toAPIError(err).Status == http.StatusNotFound
}

func (s *Server) peerConfig(w http.ResponseWriter, r *request) error {
	p, err := s.lookupPeer(r.PathValue("name"))
	if err != nil {
		return err
	}
	conf := ClientConfig(s.b.State().Settings(), p, "", "")
	switch f := r.URL.Query().Get("format"); f {
	case "", "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(conf))
	case "qr":
		png, err := qrcode.Encode(conf, qrcode.Medium, -qrModulePixels)
		if err != nil {
			return fmt.Errorf("QR code: %w", err)
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(len(png)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(png)
	default:
		return errorf(http.StatusBadRequest, "invalid", "format %q: use text or qr", f)
	}
	return nil
}

// qrModulePixels is the width of one QR module in the PNG: big enough for a
// phone camera to read the code off a screen.
const qrModulePixels = 6

// Placeholders written into a client config for keys the server does not
// know (or will not show).
const (
	PrivateKeyPlaceholder   = "<client private key>"
	PresharedKeyPlaceholder = "<preshared key given at creation>"
)

// ClientConfig renders a wg-quick configuration for peer p. private and psk
// are written when known (at creation), placeholders otherwise.
func ClientConfig(set fsm.Settings, p fsm.Peer, private, psk string) string {
	var b strings.Builder
	if private == "" {
		private = PrivateKeyPlaceholder
	}
	fmt.Fprintf(&b, "# raftguard peer %s\n[Interface]\nPrivateKey = %s\n", p.Name, private)
	fmt.Fprintf(&b, "Address = %s\n", joinPrefixes(p.Addresses))
	if len(set.ClientDNS) > 0 {
		fmt.Fprintf(&b, "DNS = %s\n", strings.Join(set.ClientDNS, ", "))
	}
	if set.MTU > 0 {
		fmt.Fprintf(&b, "MTU = %d\n", set.MTU)
	}
	fmt.Fprintf(&b, "\n[Peer]\nPublicKey = %s\n", set.PublicKey)
	switch {
	case psk != "":
		fmt.Fprintf(&b, "PresharedKey = %s\n", psk)
	case p.PresharedKey != "":
		fmt.Fprintf(&b, "PresharedKey = %s\n", PresharedKeyPlaceholder)
	}
	allowed := set.ClientAllowedIPs
	if len(allowed) == 0 {
		allowed = slices.Clone(set.ServerAddresses())
	}
	fmt.Fprintf(&b, "AllowedIPs = %s\nEndpoint = %s\n", joinPrefixes(allowed), set.Endpoint)
	if set.Keepalive > 0 {
		fmt.Fprintf(&b, "PersistentKeepalive = %d\n", set.Keepalive)
	}
	return b.String()
}

func joinPrefixes(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}
