// Package httpapi is raftguard's REST API, served on every node over HTTPS:
// authentication, input validation, errors, forwarding of writes from
// followers to the leader, and the join handshake for new nodes.
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
	"strconv"
	"strings"
	"sync"
	"time"

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
	// HeaderIndex is the leader's applied Raft index after a write; the
	// forwarding follower waits to reach it before answering, so a read on
	// the same node sees the write.
	HeaderIndex = "X-Raftguard-Index"
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
	AppliedIndex() uint64
	Status() NodeStatus
	Servers() ([]Member, error)
	AddVoter(id, raftAddr string) error
	RemoveServer(id string) error
	// TransferLeadership hands leadership over and returns the new leader
	// once it is serving.
	TransferLeadership(ctx context.Context, to string) (string, error)
	PeerStats() map[string]PeerStats // by public key; nil without a data plane
}

// Config configures the API server.
type Config struct {
	Backend Backend
	// PeerTLS is the client TLS config for calls to other nodes (mutual TLS).
	PeerTLS *tls.Config
	Logger  *slog.Logger
	// MaxBody caps request bodies (default 1 MiB).
	MaxBody int64
	// LeaderWait is how long a write waits for a leader before answering
	// 503 (default 5s).
	LeaderWait time.Duration
}

// Server serves the API.
type Server struct {
	cfg    Config
	b      Backend
	log    *slog.Logger
	client *http.Client
	mux    *http.ServeMux
	limit  *failLimiter
	routes []string
}

// New returns the API server.
func New(cfg Config) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.LeaderWait == 0 {
		cfg.LeaderWait = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		b:     cfg.Backend,
		log:   cfg.Logger,
		mux:   http.NewServeMux(),
		limit: newFailLimiter(20, time.Minute),
		client: &http.Client{
			Transport: &http.Transport{
				TLSClientConfig:     cfg.PeerTLS,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			},
		},
	}
	s.register()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s }

// Routes lists the registered method and path patterns.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

// Close releases idle connections to other nodes.
func (s *Server) Close() { s.client.CloseIdleConnections() }

// access says who may call a route.
type access int

const (
	public access = iota // no authentication
	admin                // admin token, or a member node's certificate for reads
	joiner               // the join token inside the body
)

// kind says where a route runs.
type kind int

const (
	local kind = iota // on any node, from the local replica
	read              // local, or on the leader with ?consistent=true
	write             // on the leader (forwarded from followers)
)

type request struct {
	*http.Request
	body []byte
}

type handlerFunc func(w http.ResponseWriter, r *request) error

func (s *Server) handle(pattern string, acc access, k kind, h handlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		w.Header().Set(HeaderNode, s.b.NodeID())
		body, err := io.ReadAll(http.MaxBytesReader(w, hr.Body, s.cfg.MaxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, errorf(http.StatusRequestEntityTooLarge, "too_large", "request body is over %d bytes", s.cfg.MaxBody))
				return
			}
			writeError(w, errorf(http.StatusBadRequest, "invalid", "cannot read the request body"))
			return
		}
		r := &request{Request: hr, body: body}
		if acc == admin {
			if err := s.authenticate(r, k == write); err != nil {
				writeError(w, err)
				return
			}
		}
		if acc == joiner && s.limit.blocked(sourceIP(hr)) {
			writeError(w, errorf(http.StatusTooManyRequests, "too_many_failures", "too many failed attempts from this address; wait and retry"))
			return
		}
		switch {
		case k == write, k == read && hr.URL.Query().Get("consistent") == "true":
			s.onLeader(w, r, h, k == write)
		default:
			if err := h(w, r); err != nil {
				writeError(w, err)
			}
		}
	}))
}

// authenticate checks the bearer token. A member node's client certificate
// also grants read access (used by GET /v1/cluster on other nodes).
func (s *Server) authenticate(r *request, isWrite bool) error {
	src := sourceIP(r.Request)
	if s.limit.blocked(src) {
		return errorf(http.StatusTooManyRequests, "too_many_failures", "too many failed authentications from this address; wait and retry")
	}
	auth := r.Header.Get("Authorization")
	if auth == "" && !isWrite && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return nil
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if ok && s.tokenValid(strings.TrimSpace(tok)) {
		return nil
	}
	s.limit.fail(src)
	return ErrUnauthorized
}

func (s *Server) tokenValid(tok string) bool {
	if tok == "" {
		return false
	}
	h := pki.HashToken(tok)
	t, ok := s.b.State().AdminTokenByHash(h)
	return ok && subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) == 1
}

// onLeader runs h on the leader: here if this node leads, else by
// forwarding the request. Writes wait up to LeaderWait for a leader, so a
// write during an election or a handover succeeds rather than fails.
func (s *Server) onLeader(w http.ResponseWriter, r *request, h handlerFunc, isWrite bool) {
	forwarded := r.Header.Get(HeaderForwardedBy) != ""
	deadline := time.Now().Add(s.cfg.LeaderWait)
	for {
		if s.b.IsLeader() {
			var err error
			if !isWrite {
				err = s.b.VerifyLeader()
			}
			rec := &recorder{ResponseWriter: w}
			if err == nil {
				if err = h(rec, r); err == nil {
					return
				}
			}
			if !errors.Is(err, ErrNotLeader) || forwarded || rec.wrote {
				writeError(w, err)
				return
			}
			// Lost leadership before the command was accepted: nothing was
			// written, so it is safe to try the new leader.
		} else if forwarded {
			writeError(w, ErrNotLeader)
			return
		} else if id := s.b.LeaderID(); id != "" && id != s.b.NodeID() {
			done, err := s.forward(w, r, id)
			if done {
				return
			}
			s.log.Debug("forward to leader failed, retrying", "leader", id, "err", err)
		}
		if time.Now().After(deadline) || r.Context().Err() != nil {
			writeError(w, ErrNoLeader)
			return
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
	}
}

type recorder struct {
	http.ResponseWriter
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	r.wrote = true
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// relayed are the response headers copied from the leader's answer.
var relayed = []string{"Content-Type", "Content-Disposition", "Retry-After", "Location", HeaderNode, HeaderIndex}

// forward sends r to the leader and relays its answer. done is false when
// nothing reached the leader (no connection), so the caller may retry.
func (s *Server) forward(w http.ResponseWriter, r *request, leaderID string) (done bool, err error) {
	node, ok := s.b.State().Node(leaderID)
	if !ok || node.APIAddr == "" {
		return false, fmt.Errorf("leader %s has no known API address", leaderID)
	}
	u := *r.URL
	u.Scheme, u.Host = "https", node.APIAddr
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(r.body))
	if err != nil {
		return false, err
	}
	for _, hname := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := r.Header.Get(hname); v != "" {
			req.Header.Set(hname, v)
		}
	}
	req.Header.Set(HeaderForwardedBy, s.b.NodeID())
	resp, err := s.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	// A leader that has just stepped down answers 503 without doing
	// anything: try again with whoever leads now.
	if resp.StatusCode == http.StatusServiceUnavailable {
		var eb ErrorBody
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code == "no_leader" {
			return false, errors.New("leader stepped down")
		}
		s.relay(w, resp, data)
		return true, nil
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		writeError(w, fmt.Errorf("%w: reading the leader's answer: %v", ErrTimeout, err))
		return true, nil
	}
	if idx, err := strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64); err == nil {
		s.waitApplied(r.Context(), idx)
	}
	s.relay(w, resp, data)
	return true, nil
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

// waitApplied waits (bounded) until the local replica has applied idx.
func (s *Server) waitApplied(ctx context.Context, idx uint64) {
	deadline := time.Now().Add(5 * time.Second)
	for s.b.AppliedIndex() < idx && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
}

// apply proposes a command and marks the answer with the applied index.
func (s *Server) apply(w http.ResponseWriter, t fsm.CommandType, body any) (any, error) {
	res, err := s.b.Apply(t, body)
	if err != nil {
		return nil, err
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(s.b.AppliedIndex(), 10))
	return res, nil
}

// decode parses a JSON body strictly: unknown fields and trailing data are
// errors.
func decode(r *request, v any) error {
	if len(bytes.TrimSpace(r.body)) == 0 {
		return errorf(http.StatusBadRequest, "invalid", "request body is empty; send a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(r.body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if d.More() {
		return errorf(http.StatusBadRequest, "invalid", "malformed JSON: data after the object")
	}
	return nil
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// failLimiter answers 429 to a source after too many failed attempts
// within a window.
type failLimiter struct {
	max    int
	window time.Duration
	mu     sync.Mutex // guards fails
	fails  map[string][]time.Time
}

func newFailLimiter(max int, window time.Duration) *failLimiter {
	return &failLimiter{max: max, window: window, fails: map[string][]time.Time{}}
}

func (l *failLimiter) prune(src string, now time.Time) []time.Time {
	ts := l.fails[src]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, src)
	} else {
		l.fails[src] = ts
	}
	return ts
}

func (l *failLimiter) fail(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	ts := l.prune(src, now)
	if len(l.fails) > 10000 { // bound memory under a spray of sources
		clear(l.fails)
	}
	l.fails[src] = append(ts, now)
}

func (l *failLimiter) blocked(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.prune(src, time.Now())) >= l.max
}
