// Package httpapi is raftguard's REST API, served on every node over HTTPS.
// It owns HTTP only: routes (one file per resource: cluster.go, tokens.go,
// join.go, peers.go, settings.go), authentication, decoding, encoding,
// errors and their statuses, forwarding of writes from followers to the
// leader, and metrics. The cluster workflows (join, node removal, the
// leadership handover, settings changes, restore) belong to the node's
// ClusterService and Backend: a handler decodes, calls one method and
// encodes its answer.
package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/raftguard/raftguard/internal/apiclient"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/pki"
)

// Headers the API sets or reads.
const (
	// HeaderNode names the node that served a response.
	HeaderNode = "X-Raftguard-Node"
	// HeaderForwardedBy marks a request forwarded by a follower; a forwarded
	// request is never forwarded again.
	HeaderForwardedBy = "X-Raftguard-Forwarded-By"
	// HeaderIndex is, after a write, the index of the last command the
	// leader's state machine has applied (the write's own or a later
	// one). A follower that forwarded the write serves its next reads only
	// once its own state machine has reached that index, so a read on the
	// same node sees the write.
	HeaderIndex = "X-Raftguard-Index"
	// HeaderAttempt counts the earlier tries of a forwarded write whose
	// outcome was unknown (the leader lost leadership or the connection
	// broke after the request was sent). A handler uses it to keep a retry
	// idempotent: a DELETE retried after an unknown outcome answers 204
	// when the peer is already gone.
	HeaderAttempt = "X-Raftguard-Attempt"
	// HeaderDeadline is the time (RFC 3339, UTC) after which the sender no
	// longer waits for a write's answer. A node does not apply or forward
	// a write that reaches it later (503 deadline_exceeded), so a request
	// the client gave up on cannot take effect after the client's next
	// write, say when a partitioned link delivers it late. Clients may set
	// it (the CLI does); a node always sets it on a forwarded write, no
	// later than the client's.
	HeaderDeadline = apiclient.HeaderDeadline
	// headerGenerated carries the keys a node generated for a create
	// without a public key ("PRIVATE PUBLIC [PRESHARED]") to the leader,
	// over mutual TLS, so that every try of the request proposes the same
	// keys and the answer can hold the private key and config. It is read
	// only on forwarded requests and never logged.
	headerGenerated = "X-Raftguard-Generated-Keys"
	// HeaderProtocol is, on a join request, the newest command protocol the
	// joining node applies (absent: 1). A node that cannot apply what the
	// cluster version allows is refused (409 upgrade_required).
	HeaderProtocol = "X-Raftguard-Protocol"
)

// Backend is what the API needs from the node.
type Backend interface {
	NodeID() string
	State() *fsm.FSM
	IsLeader() bool
	// LeaderID returns the leader's node id, "" when none is known.
	LeaderID() string
	// Apply proposes a command on the leader: ErrNotLeader elsewhere.
	Apply(t fsm.CommandType, body any) (any, error)
	// VerifyLeader confirms leadership with a quorum and waits until the
	// local state holds everything committed before the call.
	VerifyLeader() error
	Status() NodeStatus
	// NodeStatusAt asks the node whose API is at addr for its own status
	// (over the nodes' mutual TLS, briefly).
	NodeStatusAt(ctx context.Context, addr string) (NodeStatus, error)
	Servers() ([]Member, error)
	AddVoter(id, raftAddr string) error
	RemoveServer(id string) error
	// TransferLeadership hands leadership over and returns the new leader
	// once it is serving.
	TransferLeadership(ctx context.Context, to string) (string, error)
	PeerStats() map[string]PeerStats // by public key; nil without a data plane
	// LeaderChanges counts the leader changes this node has observed (a
	// new leader becoming known), for metrics.
	LeaderChanges() uint64
	// RestoreSnapshot replaces the replicated state, through Raft, with
	// the snapshot of size bytes read from r; on the leader only
	// (ErrNotLeader elsewhere). The caller has validated the snapshot.
	RestoreSnapshot(r io.Reader, size int64) error
}

// Config configures the API server.
type Config struct {
	Backend Backend
	// PeerTLS is the client TLS config for calls to other nodes (mutual TLS).
	PeerTLS *tls.Config
	Logger  *slog.Logger
	// MaxBody caps request bodies (default 1 MiB). The snapshot restore
	// route has its own, larger limit (MaxSnapshotBody).
	MaxBody int64
	// MaxSnapshotBody caps the body of a snapshot restore (default 1 GiB).
	// The snapshot is held in memory while it is checked and restored.
	MaxSnapshotBody int64
	// LeaderWait is how long a write waits for a leader before answering
	// 503 (default 5s).
	LeaderWait time.Duration
	// PeerLimit returns the most enabled peers this node's data plane
	// holds (0: no limit). Creating or enabling a peer beyond it answers
	// 422 instead of leaving the peer off the interface.
	PeerLimit func() int
	// Cluster runs the cluster workflows the handlers call (nil: those
	// routes answer 501).
	Cluster ClusterService
	// SessionTTL is how long a web console session lasts (default
	// DefaultSessionTTL).
	SessionTTL time.Duration
}

// ClusterService runs the cluster workflows: a handler decodes the
// request, calls one method and encodes the answer. Methods that change
// the replicated state run on the leader (ErrNotLeader elsewhere).
type ClusterService interface {
	// UpdateSettings validates and applies a settings change and returns
	// the new settings.
	UpdateSettings(p SettingsPatch) (fsm.Settings, error)
	// RemoveNode removes a node from the cluster and revokes its
	// certificate and admin token (ErrIsLeader for the leader itself).
	RemoveNode(id string) error
	// IssueJoinCertificate and Join are the two steps of a join, for a
	// caller whose join token (and, at step two, certificate) the API
	// has checked.
	IssueJoinCertificate(req JoinCertRequest) (JoinCertResponse, error)
	Join(req JoinRequest) (JoinResponse, error)
	// HandOver hands leadership to node to (any healthy follower when
	// "") and returns the new leader once it serves.
	HandOver(ctx context.Context, to string) (string, error)
}

// service returns the cluster service, or an error answer without one.
func (s *Server) service() (ClusterService, error) {
	if s.cfg.Cluster == nil {
		return nil, errorf(http.StatusNotImplemented, "not_implemented", "this node runs no cluster service")
	}
	return s.cfg.Cluster, nil
}

// wrote marks the answer to a write with the index of the state machine's
// last applied command (see HeaderIndex).
func (s *Server) wrote(w http.ResponseWriter) {
	w.Header().Set(HeaderIndex, fmtIndex(s.b.State().AppliedIndex()))
}

// Server serves the API.
type Server struct {
	cfg     Config
	b       Backend
	log     *slog.Logger
	client  *http.Client
	mux     *http.ServeMux
	limit   *failLimiter
	routes  []string
	metrics *metrics
	// readFloor is the highest index of a write this node forwarded and
	// acknowledged: local reads wait until the replica has applied it.
	readFloor atomic.Uint64
	// refusals aggregates refused authentications and joins for the
	// audit log (audit.go).
	refusals refusalBatch
}

// New returns the API server.
func New(cfg Config) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxSnapshotBody == 0 {
		cfg.MaxSnapshotBody = 1 << 30
	}
	if cfg.LeaderWait == 0 {
		cfg.LeaderWait = 5 * time.Second
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		b:     cfg.Backend,
		log:   cfg.Logger,
		mux:   http.NewServeMux(),
		limit: newFailLimiter(failLimit, failWindow),
		client: &http.Client{
			Transport: &http.Transport{
				TLSClientConfig: cfg.PeerTLS,
				// Forwarded writes from a busy follower all go to one
				// host, the leader: keep enough idle connections that
				// each request reuses one instead of paying a TLS
				// handshake.
				MaxIdleConns:        1024,
				MaxIdleConnsPerHost: 512,
				IdleConnTimeout:     90 * time.Second,
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				TLSHandshakeTimeout: 5 * time.Second,
			},
		},
	}
	s.metrics = newMetrics(s)
	s.register()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s }

// Routes lists the registered method and path patterns.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

// Close releases idle connections to other nodes.
func (s *Server) Close() {
	s.refusals.stop()
	s.client.CloseIdleConnections()
}

// access says who may call a route.
type access int

const (
	public    access = iota // no authentication
	admin                   // admin token, or a member node's certificate for reads
	tokenOnly               // admin token only (routes that hand out secrets)
	joiner                  // the join token inside the body
)

// kind says where a route runs.
type kind int

const (
	local kind = iota // on any node, from the local replica
	read              // local, or on the leader with ?consistent=true
	write             // on the leader (forwarded from followers)
)

// request is one API call as the handlers see it.
type request struct {
	*http.Request
	body []byte
	rt   *route
	// attempt counts the earlier tries of this request on a leader whose
	// outcome is unknown (see HeaderAttempt).
	attempt int
	// gen holds the keys generated for a create without a public key; the
	// same keys are proposed on every try.
	gen *genKeys
	// deadline is the sender's HeaderDeadline (zero: none).
	deadline time.Time
	// who is the caller as the audit log records it (audit.go).
	who *fsm.AuditRecord
}

// errDeadline means a write reached a node after its sender's deadline.
var errDeadline = errorf(http.StatusServiceUnavailable, "deadline_exceeded",
	"the request arrived after its deadline ("+HeaderDeadline+"), so it was not applied; if this repeats, check the sender's clock")

// expired reports whether the request's deadline has passed.
func (r *request) expired() bool { return !r.deadline.IsZero() && time.Now().After(r.deadline) }

type handlerFunc func(w http.ResponseWriter, r *request) error

// route is one registered method and path.
type route struct {
	pattern string
	acc     access
	kind    kind
	h       handlerFunc
	// maxBody caps the request body; 0 means Config.MaxBody.
	maxBody int64
	// prepare runs on the node that received the request, before it is
	// forwarded: work that must happen once per client request rather
	// than once per try (generating keys).
	prepare func(*request) error
	// timeout bounds a forwarded call to the leader; 0 means 30s.
	timeout time.Duration
}

type routeOption func(*route)

func withMaxBody(n int64) routeOption                { return func(rt *route) { rt.maxBody = n } }
func withPrepare(f func(*request) error) routeOption { return func(rt *route) { rt.prepare = f } }
func withTimeout(d time.Duration) routeOption        { return func(rt *route) { rt.timeout = d } }

func (s *Server) handle(pattern string, acc access, k kind, h handlerFunc, opts ...routeOption) {
	rt := &route{pattern: pattern, acc: acc, kind: k, h: h, maxBody: s.cfg.MaxBody, timeout: 30 * time.Second}
	for _, o := range opts {
		o(rt)
	}
	s.routes = append(s.routes, pattern)
	obs := s.metrics.route(pattern)
	s.mux.Handle(pattern, http.HandlerFunc(func(hw http.ResponseWriter, hr *http.Request) {
		start := time.Now()
		w := &statusWriter{ResponseWriter: hw}
		s.serve(w, hr, rt)
		obs(w.code(), time.Since(start))
	}))
}

func (s *Server) serve(w http.ResponseWriter, hr *http.Request, rt *route) {
	w.Header().Set(HeaderNode, s.b.NodeID())
	if err := s.checkClientCert(hr); err != nil {
		writeError(w, err)
		return
	}
	// Authenticate before reading the body, so that no unauthenticated
	// caller makes the node buffer a large body.
	switch rt.acc {
	case admin, tokenOnly:
		if err := s.authenticate(hr, rt.kind == write || rt.acc == tokenOnly); err != nil {
			writeError(w, err)
			return
		}
	case joiner:
		if wait := s.limit.blockedFor(sourceIP(hr)); wait > 0 {
			s.log.Debug("join refused: address locked out", "source", sourceIP(hr), "path", hr.URL.Path, "retry_after", wait.Round(time.Second))
			s.noteRefusal(sourceIP(hr), "join", "", "locked_out")
			writeError(w, lockedOut(wait, "too many failed attempts from this address"))
			return
		}
	}
	body, err := readBody(w, hr, rt.maxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	r := &request{Request: hr, body: body, rt: rt, who: s.auditWho(hr, rt)}
	forwarded := forwardedByNode(hr)
	if forwarded {
		r.attempt, _ = strconv.Atoi(hr.Header.Get(HeaderAttempt))
	}
	if v := hr.Header.Get(HeaderDeadline); v != "" && rt.kind == write {
		if r.deadline, err = time.Parse(time.RFC3339Nano, v); err != nil {
			writeError(w, errorf(http.StatusBadRequest, "invalid", "%s: want an RFC 3339 time", HeaderDeadline))
			return
		}
		if r.expired() {
			writeError(w, errDeadline)
			return
		}
	}
	if rt.prepare != nil {
		if err := rt.prepare(r); err != nil {
			writeError(w, err)
			return
		}
	}
	switch {
	case rt.kind == write, rt.kind == read && hr.URL.Query().Get("consistent") == "true":
		s.onLeader(w, r, rt.kind == write)
	default:
		if rt.kind == read {
			s.waitApplied(r.Context(), s.readFloor.Load())
		}
		if err := rt.h(w, r); err != nil {
			writeError(w, err)
		}
	}
}

// readBody reads the whole request body, at most limit bytes.
func readBody(w http.ResponseWriter, hr *http.Request, limit int64) ([]byte, error) {
	if hr.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "request body is over %d bytes", limit)
	}
	var buf bytes.Buffer
	if hr.ContentLength > 0 {
		buf.Grow(int(hr.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, hr.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "request body is over %d bytes", limit)
		}
		return nil, errorf(http.StatusBadRequest, "invalid", "cannot read the request body")
	}
	return buf.Bytes(), nil
}

// authenticate checks the bearer token, or without one the web console's
// session cookie (see session.go). A member node's client certificate
// also grants read access (used by GET /v1/cluster on other nodes, and by
// metrics scrapers that hold a node certificate) unless needToken.
func (s *Server) authenticate(r *http.Request, needToken bool) error {
	src := sourceIP(r)
	auth := r.Header.Get("Authorization")
	if secret, ok := sessionSecret(r); ok && auth == "" {
		return s.authenticateSession(r, secret)
	}
	if auth == "" && !needToken && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return nil
	}
	// A valid token is served even from an address that is locked out
	// (docs/api.md, "Authentication"): the lockout stops guessing, it must
	// not let someone sharing the admin's address lock the admin out.
	tok, isBearer := bearerToken(auth)
	if isBearer && s.tokenValid(tok) {
		return nil
	}
	if wait := s.limit.blockedFor(src); wait > 0 {
		s.log.Debug("authentication refused: address locked out", "source", src, "method", r.Method, "path", r.URL.Path, "retry_after", wait.Round(time.Second))
		s.noteRefusal(src, "authenticate", r.URL.Path, "locked_out")
		return lockedOut(wait, "too many failed authentications from this address")
	}
	if s.catchingUp() {
		// The token may be one this node has not replayed yet: neither
		// refuse it nor count it as a failure.
		return errorf(http.StatusServiceUnavailable, "not_ready", "this node is still loading the cluster's state; retry shortly")
	}
	s.authFailed(r, src, authFailReason(auth, isBearer))
	return ErrUnauthorized
}

// catchingUp reports whether the local state may lack tokens the cluster
// has: before the state is initialized, or while a restarted node replays
// its log.
func (s *Server) catchingUp() bool {
	if !s.b.State().Initialized() {
		return true
	}
	r, ok := s.b.(interface{ Replaying() bool })
	return ok && r.Replaying()
}

// checkClientCert refuses a request made with a node certificate the
// cluster has revoked (its node was removed, or holds a newer certificate),
// whatever else the request carries: such a certificate neither stands in
// for a token nor marks a forwarded request. The TLS layer has already
// checked that a presented certificate chains to the cluster CA.
func (s *Server) checkClientCert(r *http.Request) error {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	if err := pki.CheckRevoked(r.TLS.PeerCertificates, s.b.State().CertRevoked); err != nil {
		s.log.Warn("refused a revoked node certificate", "source", sourceIP(r), "err", err)
		return errorf(http.StatusForbidden, "certificate_revoked",
			"the client certificate of node %q was revoked when the node was removed from the cluster (or given a new certificate); wipe the node's data dir and join it again",
			r.TLS.PeerCertificates[0].Subject.CommonName)
	}
	return nil
}

func (s *Server) tokenValid(tok string) bool {
	if tok == "" {
		return false
	}
	h := pki.HashToken(tok)
	t, ok := s.b.State().AdminTokenByHash(h)
	return ok && subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) == 1
}

// onLeader runs the route's handler on the leader: here if this node leads,
// else by forwarding the request. Writes wait up to LeaderWait for a
// leader, so a write during an election or a handover succeeds rather than
// fails.
//
// A try whose outcome is unknown (the leader lost leadership while the
// command was in flight, or the connection broke after the request was
// sent) is retried on whoever leads next. The handlers make that safe: a
// create proposes the same name and keys every time (and a create is
// idempotent), a DELETE that finds the peer gone on a retry answers 204,
// and the other writes set values.
func (s *Server) onLeader(w http.ResponseWriter, r *request, isWrite bool) {
	forwarded := forwardedByNode(r.Request)
	deadline := time.Now().Add(s.cfg.LeaderWait)
	for {
		if isWrite && r.expired() {
			writeError(w, errDeadline)
			return
		}
		if s.b.IsLeader() {
			var err error
			if !isWrite {
				err = s.b.VerifyLeader()
			}
			rec := &recorder{ResponseWriter: w, who: r.who}
			if err == nil {
				if err = r.rt.h(rec, r); err == nil {
					return
				}
				r.attempt++
			}
			if !errors.Is(err, ErrNotLeader) || forwarded || rec.wrote {
				writeError(w, err)
				return
			}
			// Not the leader (any more): try whoever leads now.
		} else if forwarded {
			writeError(w, ErrNotLeader)
			return
		} else if id := s.b.LeaderID(); id != "" && id != s.b.NodeID() {
			done, sent, err := s.forward(w, r, id)
			if done {
				return
			}
			if sent {
				r.attempt++
			}
			s.log.Debug("forward to leader failed, retrying", "leader", id, "err", err)
		}
		if time.Now().After(deadline) || r.Context().Err() != nil {
			writeError(w, ErrNoLeader)
			return
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-r.Context().Done():
		}
	}
}

// recorder notes whether a handler wrote anything.
type recorder struct {
	http.ResponseWriter
	wrote bool
	// who is the caller of the write being handled, for its audit record.
	who *fsm.AuditRecord
}

func (r *recorder) WriteHeader(code int) {
	r.wrote = true
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// statusWriter notes the status of an answer, for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// relayed are the response headers copied from the leader's answer.
var relayed = []string{"Content-Type", "Content-Disposition", "Cache-Control", "Retry-After", "Location", "Set-Cookie", HeaderNode, HeaderIndex}

// forward sends r to the leader and relays its answer. done is false when
// the caller may retry: nothing reached the leader, or the leader answered
// that it no longer leads. sent says whether the request may have reached
// the leader (its outcome is then unknown).
func (s *Server) forward(w http.ResponseWriter, r *request, leaderID string) (done, sent bool, err error) {
	node, ok := s.b.State().Node(leaderID)
	if !ok || node.APIAddr == "" {
		return false, false, fmt.Errorf("leader %s has no known API address", leaderID)
	}
	h := http.Header{}
	for _, hname := range []string{"Authorization", "Content-Type", "Accept", HeaderProtocol, HeaderCSRF} {
		if v := r.Header.Get(hname); v != "" {
			h.Set(hname, v)
		}
	}
	if secret, ok := sessionSecret(r.Request); ok {
		h.Set("Cookie", (&http.Cookie{Name: SessionCookie, Value: secret}).String())
	}
	h.Set(HeaderForwardedBy, s.b.NodeID())
	h.Set(HeaderSource, auditSource(r.Request))
	if r.rt.kind == write {
		// The leader must not apply this after this node stopped waiting
		// (bytes stuck on a cut link are delivered when it heals).
		dl := time.Now().Add(r.rt.timeout)
		if !r.deadline.IsZero() && r.deadline.Before(dl) {
			dl = r.deadline
		}
		h.Set(HeaderDeadline, dl.UTC().Format(time.RFC3339Nano))
	}
	if r.attempt > 0 {
		h.Set(HeaderAttempt, strconv.Itoa(r.attempt))
	}
	if r.gen != nil {
		h.Set(headerGenerated, r.gen.header())
	}
	ctx, cancel := context.WithTimeout(r.Context(), r.rt.timeout)
	defer cancel()
	leader := apiclient.Client{Base: "https://" + node.APIAddr, HTTP: s.client}
	resp, err := leader.Send(ctx, r.Method, r.URL.RequestURI(), h, bytes.NewReader(r.body))
	if err != nil {
		s.metrics.forwarded(r.rt.pattern, "error")
		return false, !isDialError(err), err
	}
	defer resp.Body.Close()
	// A join refused by the leader counts against the joiner's address
	// here: the leader only sees this node's.
	if r.rt.acc == joiner && resp.StatusCode == http.StatusUnauthorized {
		s.limit.fail(sourceIP(r.Request))
	}
	// A leader that has just stepped down answers 503 no_leader without
	// having done anything it knows of, and 503 leadership_lost when it
	// lost leadership with the change in flight (the outcome unknown; the
	// handlers make a retry safe): either way, try again with whoever leads
	// now.
	if resp.StatusCode == http.StatusServiceUnavailable {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if code := apiclient.ErrorFrom(resp.StatusCode, data).Code; code == "no_leader" || code == "leadership_lost" {
			s.metrics.forwarded(r.rt.pattern, code)
			return false, true, errors.New("leader stepped down")
		}
		s.metrics.forwarded(r.rt.pattern, strconv.Itoa(resp.StatusCode))
		s.relay(w, resp, data)
		return true, true, nil
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.metrics.forwarded(r.rt.pattern, "error")
		writeError(w, fmt.Errorf("%w: reading the leader's answer: %v", ErrTimeout, err))
		return true, true, nil
	}
	s.metrics.forwarded(r.rt.pattern, strconv.Itoa(resp.StatusCode))
	if idx, err := strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64); err == nil {
		// Rather than wait here for the replica to apply the write (the
		// follower learns of the commit only with the leader's next
		// message, up to a commit timeout later), make the next local
		// reads wait for it.
		raise(&s.readFloor, idx)
	}
	s.relay(w, resp, data)
	return true, true, nil
}

// isDialError reports whether err happened before a request could be sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (s *Server) relay(w http.ResponseWriter, resp *http.Response, body []byte) {
	for _, hname := range relayed {
		if v := resp.Header.Get(hname); v != "" {
			w.Header().Set(hname, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// raise sets v to idx if that is higher.
func raise(v *atomic.Uint64, idx uint64) {
	for {
		cur := v.Load()
		if idx <= cur || v.CompareAndSwap(cur, idx) {
			return
		}
	}
}

// waitApplied waits (bounded) until the local state machine has applied
// the command at idx. It watches the state machine's own index rather than
// raft's applied index, which runs ahead of the state machine by the
// entries queued for it.
func (s *Server) waitApplied(ctx context.Context, idx uint64) {
	st := s.b.State()
	if idx == 0 || st.AppliedIndex() >= idx {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for st.AppliedIndex() < idx && time.Now().Before(deadline) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// apply proposes a command and marks the answer with the index of the
// state machine's last applied command (see HeaderIndex).
func (s *Server) apply(w http.ResponseWriter, t fsm.CommandType, body any) (any, error) {
	t, body, err := s.withAudit(w, t, body)
	if err != nil {
		return nil, err
	}
	res, err := s.b.Apply(t, body)
	if err != nil {
		return nil, err
	}
	w.Header().Set(HeaderIndex, fmtIndex(s.b.State().AppliedIndex()))
	return res, nil
}

func fmtIndex(i uint64) string { return strconv.FormatUint(i, 10) }

// decode parses a JSON body strictly: it must be one object; unknown
// fields and trailing data are errors.
func decode(r *request, v any) error {
	trimmed := bytes.TrimSpace(r.body)
	if len(trimmed) == 0 {
		return errorf(http.StatusBadRequest, "invalid", "request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return errorf(http.StatusBadRequest, "invalid", "request body is not a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(r.body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	// More is false before a stray '}' or ']': only the end of the body
	// may follow the object.
	if _, err := d.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "invalid", "malformed JSON: data after the object")
	}
	return checkJSONKeys(r.body, reflect.TypeOf(v))
}
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// forwardedByNode reports whether r was forwarded by another node: it says
// so and it came with a certificate of the cluster CA. A client setting the
// header itself is not a node.
func forwardedByNode(r *http.Request) bool {
	return r.Header.Get(HeaderForwardedBy) != "" && r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}
