package test

// The write workload and the checker of the fault-injection suite
// (faults_test.go): HTTPS clients that dial from inside a lab namespace, a
// rate-limited mix of peer creates, updates and deletes that retries every
// operation through failures until it gets a definitive answer, the history
// of every operation, and the checks run after each scenario.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/netlab"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// ---- HTTPS from inside a namespace ----

// errNotSent marks a request that never left the client: the connection
// could not be opened, so the server cannot have acted on it.
var errNotSent = errors.New("connection not opened")

// nodeAPI is an admin client of one node's API, dialing from a namespace.
type nodeAPI struct {
	id  string // the node it talks to
	api apiclient.Client
	tr  *http.Transport
}

// newNodeAPI returns a client of the API at addr that dials from inside
// the namespace of host from.
func newNodeAPI(id string, from *netlab.Host, addr string, tc *tls.Config, token string, timeout time.Duration) *nodeAPI {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			// On the lab's LAN a connection opens at once or not at all
			// (the node is cut off): give up early, nothing was sent.
			ctx, cancel := context.WithTimeout(ctx, scaled(2*time.Second))
			defer cancel()
			c, err := from.DialContext(ctx, network, a)
			if err != nil {
				err = fmt.Errorf("%w: %v", errNotSent, err)
			}
			return c, err
		},
		TLSClientConfig:     tc.Clone(),
		TLSHandshakeTimeout: scaled(3 * time.Second),
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
	return apiOver(id, addr, tr, token, timeout)
}

// apiOver returns a client of node id's API at addr that uses transport tr.
// Each write carries its deadline (now + timeout): once the workload gives
// up on an attempt, that attempt must not take effect later (after a later
// write of the same peer).
func apiOver(id, addr string, tr *http.Transport, token string, timeout time.Duration) *nodeAPI {
	return &nodeAPI{id: id, tr: tr, api: apiclient.Client{Base: "https://" + addr, Token: token, HTTP: &http.Client{Timeout: timeout, Transport: tr}}}
}

// apiAnswer is one HTTP answer.
type apiAnswer struct {
	status int
	code   string // the error code of an error answer
	body   []byte
}

// call sends one request. A non-nil error means no answer: errNotSent
// (wrapped) when the request cannot have reached the node, otherwise the
// outcome is unknown.
func (a *nodeAPI) call(ctx context.Context, method, path string, in any) (apiAnswer, error) {
	ans, err := a.api.Call(ctx, method, path, in)
	if err != nil {
		return apiAnswer{}, err
	}
	res := apiAnswer{status: ans.Status, body: ans.Body}
	if ans.Status >= 300 {
		res.code = apiclient.ErrorFrom(ans.Status, ans.Body).Code
	}
	return res, nil
}

// get reads a JSON answer into out; any status but 200 is an error.
func (a *nodeAPI) get(ctx context.Context, path string, out any) error {
	ans, err := a.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("%s GET %s: %w", a.id, path, err)
	}
	if ans.status != http.StatusOK {
		return fmt.Errorf("%s GET %s: %d %s", a.id, path, ans.status, ans.code)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(ans.body, out); err != nil {
		return fmt.Errorf("%s GET %s: %w", a.id, path, err)
	}
	return nil
}

func (a *nodeAPI) close() { a.tr.CloseIdleConnections() }

// ---- the workload ----

// opKind is what one workload operation does to a peer.
type opKind string

const (
	opCreate  opKind = "create"
	opEnable  opKind = "enable"
	opDisable opKind = "disable"
	opRoutes  opKind = "allowed_ips"
	opPSK     opKind = "preshared_key"
	opDelete  opKind = "delete"
)

// opRecord is one operation of the history: what was asked and what came
// of it. An operation is retried (same name, same key, same values) until
// a definitive answer; acked says it got a 2xx one.
type opRecord struct {
	kind    opKind
	name    string
	key     string   // create: the public key
	psk     string   // create, preshared_key: the preshared key
	allowed []string // allowed_ips: the new list
	via     string   // first node asked

	start, end time.Time
	attempts   int
	ambiguous  int // attempts whose outcome is unknown (may have taken effect)
	definitive bool
	acked      bool
	status     int
	addrs      []netip.Prefix // create: the addresses answered
	violation  string         // a definitive answer the API contract rules out
	log        []string       // each try: when, where, what came of it
}

// peerModel is the state of one peer the history allows.
type peerModel struct {
	exists  bool
	key     string
	enabled bool
	allowed []string
	addrs   []netip.Prefix // nil: any (a create whose outcome is unknown)
}

func (m peerModel) String() string {
	if !m.exists {
		return "absent"
	}
	return fmt.Sprintf("key %s… enabled %v allowed %v addresses %v", m.key[:8], m.enabled, m.allowed, m.addrs)
}

// apply returns the state after op took effect on m.
func (op *opRecord) apply(m peerModel) peerModel {
	switch op.kind {
	case opCreate:
		if !m.exists {
			return peerModel{exists: true, key: op.key, enabled: true, allowed: []string{}, addrs: op.addrs}
		}
	case opEnable, opDisable:
		if m.exists {
			m.enabled = op.kind == opEnable
		}
	case opRoutes:
		if m.exists {
			m.allowed = slices.Clone(op.allowed)
		}
	case opDelete:
		return peerModel{}
	}
	return m
}

// workloadConfig sets up a workload.
type workloadConfig struct {
	Rate    int           // write attempts per second, all workers together
	Workers int           // concurrent clients
	Names   int           // peer names per worker
	Drain   time.Duration // after Stop, how long an operation in flight may still retry
	Prefix  string        // peer name prefix
}

// workload runs creates, updates and deletes of peers against every node.
// Each worker owns its names, so the operations on one name are
// sequential and the history defines the state each name must end in.
type workload struct {
	t     testing.TB
	cfg   workloadConfig
	apis  []*nodeAPI
	toks  chan struct{}
	stop  chan struct{} // closed by Stop: no new operations
	hard  chan struct{} // closed at the drain deadline: give up retrying
	wg    sync.WaitGroup
	tickr sync.WaitGroup

	mu        sync.Mutex // guards the fields below
	ops       []*opRecord
	secrets   []string       // preshared keys the workload sent
	classes   map[string]int // attempt outcomes: status codes and error classes
	attempts  int
	started   time.Time
	stopped   time.Time
	stopCalls int
}

func startWorkload(t testing.TB, apis []*nodeAPI, cfg workloadConfig) *workload {
	if cfg.Workers == 0 {
		cfg.Workers = 32
	}
	if cfg.Names == 0 {
		cfg.Names = 7
	}
	if cfg.Drain == 0 {
		cfg.Drain = 45 * time.Second
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "w"
	}
	// Allowed IPs are one /32 per name out of 203.0.113.0/24.
	if cfg.Workers*cfg.Names > 250 {
		t.Fatalf("workload: %d names, at most 250", cfg.Workers*cfg.Names)
	}
	w := &workload{
		t: t, cfg: cfg, apis: apis,
		toks:    make(chan struct{}, max(1, cfg.Rate/20)),
		stop:    make(chan struct{}),
		hard:    make(chan struct{}),
		classes: map[string]int{},
		started: time.Now(),
	}
	w.tickr.Add(1)
	go w.tokens()
	for i := range cfg.Workers {
		names := make([]string, cfg.Names)
		routes := make([]string, cfg.Names)
		for j := range names {
			names[j] = fmt.Sprintf("%s%02d-%02d", cfg.Prefix, i, j)
			routes[j] = fmt.Sprintf("203.0.113.%d/32", 1+i*cfg.Names+j)
		}
		w.wg.Add(1)
		go w.worker(i, names, routes)
	}
	return w
}

// tokens hands out cfg.Rate write attempts a second until the hard stop.
func (w *workload) tokens() {
	defer w.tickr.Done()
	every := time.Second / time.Duration(max(1, w.cfg.Rate))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-w.hard:
			return
		case <-tick.C:
			select {
			case w.toks <- struct{}{}:
			default:
			}
		}
	}
}

// take waits for a write token; false once the workload must give up.
func (w *workload) take() bool {
	select {
	case <-w.toks:
		return true
	case <-w.hard:
		return false
	}
}

func (w *workload) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// belief is what a worker knows of one of its names from acked operations.
type belief struct {
	exists  bool
	enabled bool
	routed  bool
}

func (w *workload) worker(id int, names, routes []string) {
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(id)))
	known := make([]belief, len(names))
	next := id % len(w.apis) // node to ask first, round robin over the nodes
	avoid := newAvoidance(len(w.apis))
	for !w.stopping() {
		if !w.take() {
			return
		}
		i := rng.IntN(len(names))
		b := &known[i]
		op := &opRecord{name: names[i]}
		switch r := rng.IntN(100); {
		case !b.exists:
			op.kind = opCreate
			kp, err := wgkey.Generate()
			if err != nil {
				w.t.Error(err)
				return
			}
			psk, err := wgkey.Preshared()
			if err != nil {
				w.t.Error(err)
				return
			}
			op.key, op.psk = kp.Public, psk
		case r < 45:
			op.kind = opDisable
			if !b.enabled {
				op.kind = opEnable
			}
		case r < 75:
			op.kind = opRoutes
			op.allowed = []string{}
			if !b.routed {
				op.allowed = []string{routes[i]}
			}
		case r < 85:
			op.kind = opPSK
			psk, err := wgkey.Preshared()
			if err != nil {
				w.t.Error(err)
				return
			}
			op.psk = psk
		default:
			op.kind = opDelete
		}
		w.run(op, next, avoid)
		next = avoid.next(next)
		if !op.definitive {
			return // gave up at the hard stop
		}
		if op.acked {
			switch op.kind {
			case opCreate:
				*b = belief{exists: true, enabled: true}
			case opEnable, opDisable:
				b.enabled = op.kind == opEnable
			case opRoutes:
				b.routed = len(op.allowed) > 0
			case opDelete:
				*b = belief{}
			}
		} else if op.status == http.StatusNotFound {
			*b = belief{} // a violation, recorded; go on from what the node says
		}
	}
}

// run records op and performs it, first through node first (see retry).
func (w *workload) run(op *opRecord, first int, avoid *avoidance) {
	op.start = time.Now()
	op.via = w.apis[first].id
	w.record(op)
	w.retry(op, first, avoid, false)
}

// avoidance is one client's memory of the nodes that did not answer: each
// is avoided for a time that doubles with every failure in a row (1s up to
// 16s), so that a cut-off node does not stall the client.
type avoidance struct {
	until   []time.Time
	strikes []int
}

func newAvoidance(n int) *avoidance {
	return &avoidance{until: make([]time.Time, n), strikes: make([]int, n)}
}

func (a *avoidance) failed(n int) {
	a.strikes[n] = min(a.strikes[n]+1, 5)
	a.until[n] = time.Now().Add(time.Second << (a.strikes[n] - 1))
}

func (a *avoidance) answered(n int) { a.strikes[n], a.until[n] = 0, time.Time{} }

// next returns the node after n that is not avoided (n+1 if all are).
func (a *avoidance) next(n int) int {
	now := time.Now()
	for k := 1; k <= len(a.until); k++ {
		if c := (n + k) % len(a.until); now.After(a.until[c]) {
			return c
		}
	}
	return (n + 1) % len(a.until)
}

// retry sends op to node n, then to the next nodes in turn, until a
// definitive answer or the hard stop; with tried, op was already sent once
// (elsewhere) and the first try here waits a backoff. A node that timed
// out or could not be reached is avoided for a while (avoid).
func (w *workload) retry(op *opRecord, n int, avoid *avoidance, tried bool) {
	backoff := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 || tried {
			select {
			case <-w.hard:
				op.end = time.Now()
				return
			case <-time.After(backoff): // retry backoff, not a wait for a condition
			}
			backoff = min(2*backoff, time.Second)
			if !w.take() {
				op.end = time.Now()
				return
			}
		}
		if attempt > 0 {
			n = avoid.next(n)
		}
		at := time.Now()
		class, done := w.attempt(op, w.apis[n])
		w.count(class)
		op.log = append(op.log, fmt.Sprintf("%s %s: %s after %v", at.Format("15:04:05.000"), w.apis[n].id, class, time.Since(at).Round(time.Millisecond)))
		if done {
			op.end = time.Now()
			return
		}
		if class == "timeout" || class == "not sent" || class == "connection error" || class[0] == '4' && !done {
			avoid.failed(n) // no answer, or refused (401, 429): try the others first
		} else {
			avoid.answered(n)
		}
	}
}

// count adds one attempt's outcome to the figures.
func (w *workload) count(class string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts++
	w.classes[class]++
}

// attempt sends op once to api. It returns the outcome's class and whether
// the answer was definitive (then op records it).
func (w *workload) attempt(op *opRecord, api *nodeAPI) (class string, definitive bool) {
	op.attempts++
	ctx := context.Background()
	var (
		ans apiAnswer
		err error
	)
	path := "/v1/peers/" + op.name
	switch op.kind {
	case opCreate:
		ans, err = api.call(ctx, http.MethodPost, "/v1/peers", httpapi.CreatePeerRequest{Name: op.name, PublicKey: &op.key, PresharedKey: &op.psk})
	case opEnable, opDisable:
		on := op.kind == opEnable
		ans, err = api.call(ctx, http.MethodPatch, path, httpapi.UpdatePeerRequest{Enabled: &on})
	case opRoutes:
		ans, err = api.call(ctx, http.MethodPatch, path, httpapi.UpdatePeerRequest{AllowedIPs: &op.allowed})
	case opPSK:
		ans, err = api.call(ctx, http.MethodPatch, path, httpapi.UpdatePeerRequest{PresharedKey: &op.psk})
	case opDelete:
		ans, err = api.call(ctx, http.MethodDelete, path, nil)
	}
	switch {
	case errors.Is(err, errNotSent):
		return "not sent", false
	case err != nil:
		op.ambiguous++
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout", false
		}
		return "connection error", false
	case ans.status == http.StatusTooManyRequests, ans.status == http.StatusUnauthorized:
		// Refused before anything was done. A 401 to the valid admin
		// token is a node that has not caught up yet (see figures).
		return fmt.Sprintf("%d %s", ans.status, ans.code), false
	case ans.status >= 500:
		op.ambiguous++
		return fmt.Sprintf("%d %s", ans.status, ans.code), false
	}
	class = fmt.Sprint(ans.status)
	if ans.code != "" {
		class += " " + ans.code
	}
	op.definitive, op.status = true, ans.status
	switch op.kind {
	case opCreate:
		w.createAnswer(op, api, ans)
	case opDelete:
		switch {
		case ans.status == http.StatusNoContent || ans.status == http.StatusOK:
			op.acked = true
		case ans.status == http.StatusNotFound && op.ambiguous > 0:
			op.acked = true // an earlier try deleted it
		case ans.status == http.StatusNotFound:
			op.acked = true // it is gone either way; but its acked create was lost
			op.violation = "delete answered 404 on its first definitive try: the peer's acknowledged create was lost"
		default:
			op.violation = fmt.Sprintf("delete answered %d %s", ans.status, ans.code)
		}
	default:
		var v httpapi.PeerView
		switch {
		case ans.status != http.StatusOK:
			op.violation = fmt.Sprintf("%s answered %d %s: the peer's acknowledged create was lost", op.kind, ans.status, ans.code)
		case json.Unmarshal(ans.body, &v) != nil:
			op.violation = fmt.Sprintf("%s answered 200 with an unreadable body", op.kind)
		case op.kind == opEnable && !v.Enabled, op.kind == opDisable && v.Enabled:
			op.violation = fmt.Sprintf("%s answered a peer with enabled=%v", op.kind, v.Enabled)
		case op.kind == opRoutes && !slices.Equal(prefixStrings(v.AllowedIPs), op.allowed):
			op.violation = fmt.Sprintf("allowed_ips answered %v, asked %v", v.AllowedIPs, op.allowed)
		default:
			op.acked = true
		}
	}
	return class, true
}

// createAnswer judges the definitive answer to a create.
func (w *workload) createAnswer(op *opRecord, api *nodeAPI, ans apiAnswer) {
	switch {
	case ans.status == http.StatusCreated || ans.status == http.StatusOK:
		var v httpapi.PeerView
		if err := json.Unmarshal(ans.body, &v); err != nil {
			op.violation = "create answered an unreadable body"
			return
		}
		if v.PublicKey != op.key {
			op.violation = fmt.Sprintf("create answered %d with another public key", ans.status)
			return
		}
		op.acked, op.addrs = true, v.Addresses
	case ans.status == http.StatusConflict && ans.code == "duplicate_name":
		// A conflicting retry is a bug only if the stored key differs.
		var v httpapi.PeerView
		if err := api.get(context.Background(), "/v1/peers/"+op.name+"?consistent=true", &v); err != nil {
			op.definitive = false // ask again
			op.ambiguous++
			return
		}
		if v.PublicKey != op.key {
			op.violation = "create answered 409 duplicate_name: the workload's own name holds another key"
			return
		}
		op.acked, op.addrs = true, v.Addresses
	default:
		op.violation = fmt.Sprintf("create answered %d %s", ans.status, ans.code)
	}
}

// workloadStats are the workload's figures.
type workloadStats struct {
	Ops, Acked, Unknown, Retried, Ambiguous int
	Attempts                                int
	Duration                                time.Duration
	Latency                                 spread[time.Duration] // of acked operations, retries included
	P99                                     time.Duration
	Classes                                 map[string]int
	Violations                              []string
}

func (s workloadStats) String() string {
	keys := make([]string, 0, len(s.Classes))
	for k := range s.Classes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cl []string
	for _, k := range keys {
		cl = append(cl, fmt.Sprintf("%s×%d", k, s.Classes[k]))
	}
	return fmt.Sprintf("%d operations over %v (%.0f acked/s): %d acked, %d unknown outcome, %d retried (%d tries of unknown outcome); latency %s, p99 %s; %d attempts [%s]",
		s.Ops, s.Duration.Round(100*time.Millisecond), float64(s.Acked)/max(s.Duration.Seconds(), 0.001),
		s.Acked, s.Unknown, s.Retried, s.Ambiguous, durSpread(s.Latency), ms(s.P99), s.Attempts, strings.Join(cl, " "))
}

// Stop ends the workload: operations in flight still retry for up to
// cfg.Drain, then give up with an unknown outcome.
func (w *workload) Stop() workloadStats {
	w.mu.Lock()
	w.stopCalls++
	first := w.stopCalls == 1
	w.mu.Unlock()
	if first {
		close(w.stop)
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(w.cfg.Drain):
		}
		close(w.hard)
		w.wg.Wait()
		w.tickr.Wait()
		w.mu.Lock()
		w.stopped = time.Now()
		w.mu.Unlock()
	}
	return w.stats()
}

// abort stops the workload at once: operations in flight end with an
// unknown outcome. It does nothing after Stop.
func (w *workload) abort() {
	w.mu.Lock()
	w.stopCalls++
	first := w.stopCalls == 1
	w.mu.Unlock()
	if first {
		close(w.stop)
		close(w.hard)
		w.wg.Wait()
		w.tickr.Wait()
	}
}

func (w *workload) stats() workloadStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	end := w.stopped
	if end.IsZero() {
		end = time.Now()
	}
	s := workloadStats{Ops: len(w.ops), Attempts: w.attempts, Duration: end.Sub(w.started), Classes: maps.Clone(w.classes)}
	var lat []time.Duration
	for _, op := range w.ops {
		switch {
		case op.acked:
			s.Acked++
			lat = append(lat, op.end.Sub(op.start))
		case !op.definitive:
			s.Unknown++
		}
		if op.attempts > 1 {
			s.Retried++
		}
		s.Ambiguous += op.ambiguous
		if op.violation != "" {
			s.Violations = append(s.Violations, fmt.Sprintf("%s %s (via %s, %d tries): %s", op.kind, op.name, op.via, op.attempts, op.violation))
		}
	}
	s.Latency, s.P99 = spreadOf(lat), percentile(lat, 99)
	return s
}

// record adds an operation run outside the workers (a probe) to the
// history, so that the checker accounts for it.
func (w *workload) record(op *opRecord) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ops = append(w.ops, op)
	if op.psk != "" {
		w.secrets = append(w.secrets, op.psk)
	}
}

// models returns, per name, the states its history allows: the acked
// operations applied in order, and for an operation of unknown outcome
// both the state before and after it.
func (w *workload) models() map[string][]peerModel {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]peerModel{}
	for _, op := range w.ops {
		cur, ok := out[op.name]
		if !ok {
			cur = []peerModel{{}}
		}
		switch {
		case op.acked:
			for i := range cur {
				cur[i] = op.apply(cur[i])
			}
		case !op.definitive:
			for _, m := range slices.Clone(cur) {
				cur = append(cur, op.apply(m))
			}
		}
		out[op.name] = cur
	}
	return out
}

// historyOf describes the operations on one name, for a failure report.
func (w *workload) historyOf(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, op := range w.ops {
		if op.name != name {
			continue
		}
		fmt.Fprintf(&b, "\n\t%s %s %v: via %s, %d tries (%d of unknown outcome), answer %d, acked %v, took %v",
			op.start.Format("15:04:05.000"), op.kind, op.allowed, op.via, op.attempts, op.ambiguous, op.status, op.acked, op.end.Sub(op.start).Round(time.Millisecond))
		for _, a := range op.log {
			fmt.Fprintf(&b, "\n\t\t%s", a)
		}
	}
	return b.String()
}

// presharedKeys returns every preshared key the workload sent.
func (w *workload) presharedKeys() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.secrets)
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// matches reports whether a peer as a node lists it is in state m.
func (m peerModel) matches(v httpapi.PeerView) bool {
	if !m.exists || v.PublicKey != m.key || v.Enabled != m.enabled || !v.HasPresharedKey {
		return false
	}
	if !slices.Equal(prefixStrings(v.AllowedIPs), m.allowed) {
		return false
	}
	return m.addrs == nil || slices.Equal(v.Addresses, m.addrs)
}

// checkPeers compares one node's peer list with the history: it returns a
// description of every name whose state no history allows (a lost or
// phantom write), and of every key or address two peers share.
func checkPeers(node string, peers []httpapi.PeerView, models map[string][]peerModel) (lost, dup []string) {
	byName := map[string]httpapi.PeerView{}
	keys := map[string]string{}
	addrs := map[netip.Addr]string{}
	for _, p := range peers {
		byName[p.Name] = p
		if o, ok := keys[p.PublicKey]; ok {
			dup = append(dup, fmt.Sprintf("%s: %s and %s share a public key", node, o, p.Name))
		}
		keys[p.PublicKey] = p.Name
		for _, a := range p.Addresses {
			if o, ok := addrs[a.Addr()]; ok {
				dup = append(dup, fmt.Sprintf("%s: %s and %s share the address %s", node, o, p.Name, a.Addr()))
			}
			addrs[a.Addr()] = p.Name
		}
	}
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		ms := models[name]
		v, present := byName[name]
		ok := slices.ContainsFunc(ms, func(m peerModel) bool {
			if !present {
				return !m.exists
			}
			return m.matches(v)
		})
		if !ok {
			got := "absent"
			if present {
				got = fmt.Sprintf("key %s… enabled %v allowed %v addresses %v psk %v", v.PublicKey[:8], v.Enabled, v.AllowedIPs, v.Addresses, v.HasPresharedKey)
			}
			lost = append(lost, fmt.Sprintf("%s: %s is %s; the history allows %v", node, name, got, ms))
		}
	}
	return lost, dup
}
