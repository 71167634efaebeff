package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/pki"
)

// HeaderSource carries, on a request forwarded by a node, the address of the
// client that made it, for the audit log. It is read only from nodes.
const HeaderSource = "X-Raftguard-Source"

// Refused attempts are counted per source, action and result, and written
// to the audit log once per refusalInterval per node, in one Raft entry of
// at most maxRefusalKeys records (further sources are counted under "*"):
// a flood of bad tokens costs the Raft log at most one entry per node per
// interval.
const (
	refusalInterval = 10 * time.Second
	maxRefusalKeys  = 64
)

// AuditResponse is the answer of GET /v1/audit.
type AuditResponse struct {
	Entries []fsm.AuditEntry `json:"entries"`
}

// RefusalsRequest is the body a node sends the leader with its aggregated
// refusals (POST /v1/cluster/audit/refusals, node certificates only).
type RefusalsRequest struct {
	Records []fsm.AuditRecord `json:"records"`
}

// auditSource is the client's address: the forwarding node's word for it
// on a forwarded request.
func auditSource(r *http.Request) string {
	if forwardedByNode(r) {
		if v := r.Header.Get(HeaderSource); v != "" {
			return v
		}
	}
	return sourceIP(r)
}

// auditWho describes the caller of a write: token id (never the token),
// source address and the node that received the request.
func (s *Server) auditWho(hr *http.Request, rt *route) *fsm.AuditRecord {
	if rt.kind != write {
		return nil
	}
	who := &fsm.AuditRecord{Source: auditSource(hr), Node: s.b.NodeID()}
	if forwardedByNode(hr) {
		who.Node = hr.TLS.VerifiedChains[0][0].Subject.CommonName
	}
	if rt.acc == joiner {
		who.TokenID = "join-token"
		return who
	}
	if tok, ok := bearerToken(hr.Header.Get("Authorization")); ok {
		if t, ok := s.b.State().AdminTokenByHash(pki.HashToken(tok)); ok {
			who.TokenID = t.ID
		}
	} else {
		who.TokenID = s.sessionTokenID(hr)
	}
	return who
}

// auditOn reports whether the cluster version lets nodes propose audit
// records (every member applies them).
func (s *Server) auditOn() bool {
	return s.b.State().ClusterVersion() >= fsm.CommandSince(fsm.CmdAudit)
}

// withAudit wraps a write proposed by a handler into an Audit command that
// records it, in the same log entry, when the handler serves a caller.
func (s *Server) withAudit(w http.ResponseWriter, t fsm.CommandType, body any) (fsm.CommandType, any, error) {
	rec, ok := w.(*recorder)
	if !ok || rec.who == nil || !s.auditOn() {
		return t, body, nil
	}
	if err := fsm.CheckProposable(t, body, s.b.State().ClusterVersion()); err != nil {
		return t, body, err
	}
	r := *rec.who
	r.Time, r.Action, r.Target, r.Result = time.Now().UTC(), t.String(), auditTarget(body), "ok"
	a, err := fsm.Audited(t, body, r)
	return fsm.CmdAudit, a, err
}

// auditTarget names what a write changes.
func auditTarget(body any) string {
	switch c := body.(type) {
	case fsm.AddPeer:
		return c.Name
	case fsm.UpdatePeer:
		return c.Name
	case fsm.DeletePeer:
		return c.Name
	case fsm.RegisterNode:
		return c.ID
	case fsm.RemoveNode:
		return c.ID
	case fsm.AddAdminToken:
		return c.Token.ID
	case fsm.RevokeAdminToken:
		return c.ID
	case fsm.CreateSession:
		return c.Session.TokenID
	}
	return ""
}

// auditEvent records an action that has no write of its own (a leadership
// transfer, a settings change made by the cluster service) as an Audit
// command of its own. A failure is logged, not returned: the action has
// happened.
func (s *Server) auditEvent(r *request, action, target, result string) {
	if r.who == nil || !s.auditOn() {
		return
	}
	rec := *r.who
	rec.Time, rec.Action, rec.Target, rec.Result = time.Now().UTC(), action, target, result
	var err error
	if s.b.IsLeader() {
		_, err = s.b.Apply(fsm.CmdAudit, fsm.Audit{Records: []fsm.AuditRecord{rec}, At: rec.Time})
	} else {
		err = s.sendRecords([]fsm.AuditRecord{rec})
	}
	if err != nil {
		s.log.Warn("could not record an audit entry", "action", action, "target", target, "err", err)
	}
}

// restoreAudit returns the snapshot file to install for a restore: the
// uploaded one with the cluster's own audit log and a record of the
// restore, so the chain runs on across it.
func (s *Server) restoreAudit(r *request, snap []byte) ([]byte, error) {
	if r.who == nil || !s.auditOn() {
		return snap, nil
	}
	rec := *r.who
	rec.Time, rec.Action, rec.Result = time.Now().UTC(), "restore-snapshot", "ok"
	return fsm.WithAuditLog(snap, fsm.ContinueAudit(s.b.State().AuditLog(time.Time{}), rec))
}

func (s *Server) auditLog(w http.ResponseWriter, r *request) error {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return errorf(http.StatusBadRequest, "invalid", "since: want an RFC 3339 time")
		}
		since = t
	}
	writeJSON(w, http.StatusOK, AuditResponse{Entries: s.b.State().AuditLog(since)})
	return nil
}

// auditRefusals takes a node's aggregated refusals and records them; on
// the leader, from member nodes only.
func (s *Server) auditRefusals(w http.ResponseWriter, r *request) error {
	if !forwardedByNode(r.Request) {
		return errorf(http.StatusForbidden, "node_only", "only cluster nodes send refusals")
	}
	var req RefusalsRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Records) == 0 || len(req.Records) > fsm.MaxAuditRecords {
		return errorf(http.StatusBadRequest, "invalid", "send 1 to %d records", fsm.MaxAuditRecords)
	}
	if !s.b.IsLeader() {
		return ErrNotLeader
	}
	if _, err := s.b.Apply(fsm.CmdAudit, fsm.Audit{Records: req.Records, At: time.Now().UTC()}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type refusalKey struct{ source, action, result string }

// refusalBatch aggregates refusals between flushes.
type refusalBatch struct {
	mu      sync.Mutex // guards counts, timer, stopped
	counts  map[refusalKey]*fsm.AuditRecord
	timer   *time.Timer
	stopped bool
}

func (b *refusalBatch) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
	}
}

// noteRefusal counts a refused authentication or join for the audit log.
func (s *Server) noteRefusal(source, action, target, result string) {
	b := &s.refusals
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	if b.counts == nil {
		b.counts = map[refusalKey]*fsm.AuditRecord{}
	}
	k := refusalKey{source, action, result}
	if _, ok := b.counts[k]; !ok && len(b.counts) >= maxRefusalKeys {
		k.source = "*"
	}
	rec, ok := b.counts[k]
	if !ok {
		rec = &fsm.AuditRecord{Time: time.Now().UTC(), Source: k.source, Node: s.b.NodeID(), Action: action, Target: target, Result: result}
		b.counts[k] = rec
		if result == "locked_out" {
			// Each refusal of a locked-out source is logged at debug level;
			// the first of each interval at warn, so that a flood shows in
			// the log without filling it.
			s.log.Warn("refused a locked-out address; further refusals in the next 10 s are counted in the audit log", "source", source, "action", action, "path", target)
		}
	} else if rec.Target != target {
		rec.Target = ""
	}
	rec.Count++
	if b.timer == nil {
		b.timer = time.AfterFunc(refusalInterval, s.flushRefusals)
	}
}

// flushRefusals writes the aggregated refusals to the audit log: through
// Raft on the leader, sent to the leader elsewhere. They are dropped (the
// log lines stay) when the cluster version has no audit log or no leader
// answers.
func (s *Server) flushRefusals() {
	b := &s.refusals
	b.mu.Lock()
	counts := b.counts
	b.counts, b.timer = nil, nil
	stopped := b.stopped
	b.mu.Unlock()
	if stopped || len(counts) == 0 || !s.auditOn() {
		return
	}
	recs := make([]fsm.AuditRecord, 0, len(counts))
	for _, r := range counts {
		recs = append(recs, *r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
	var err error
	if s.b.IsLeader() {
		_, err = s.b.Apply(fsm.CmdAudit, fsm.Audit{Records: recs, At: time.Now().UTC()})
	} else {
		err = s.sendRecords(recs)
	}
	if err != nil {
		s.log.Warn("could not record refused attempts in the audit log", "records", len(recs), "err", err)
	}
}

// sendRecords sends audit records to the leader, which records them.
func (s *Server) sendRecords(recs []fsm.AuditRecord) error {
	node, ok := s.b.State().Node(s.b.LeaderID())
	if !ok || node.APIAddr == "" {
		return fmt.Errorf("no leader with a known API address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	leader := apiclient.Client{Base: "https://" + node.APIAddr, HTTP: s.client, Header: http.Header{HeaderForwardedBy: {s.b.NodeID()}}}
	_, err := leader.Do(ctx, http.MethodPost, "/v1/cluster/audit/refusals", RefusalsRequest{Records: recs}, nil)
	if ae := (*apiclient.Error)(nil); errors.As(err, &ae) {
		return fmt.Errorf("the leader answered %d %s", ae.Status, http.StatusText(ae.Status))
	}
	return err
}
