package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// The audit log is part of the replicated state: every node holds the same
// entries. An admin action is recorded by the Audit command that carries the
// write itself, so the record and the write are committed (or refused)
// together; actions without a write of their own (a leadership transfer, a
// restore) and aggregated refusals (failed authentications and joins) are
// Audit commands without a write. Each entry holds the hash of the entry
// before it, so changing, dropping or reordering an entry breaks the chain
// at that entry (VerifyAudit).

// AuditRetention is the most audit entries the state keeps; the oldest go
// first. An entry takes about 300 bytes in a snapshot, so the log takes up
// to about 3 MB.
const AuditRetention = 10000

// MaxAuditRecords is the most records one Audit command may carry.
const MaxAuditRecords = 256

// AuditRecord is what happened: when, who (token id, never the token;
// source address; the node that received the request), what (action and
// target) and how it ended.
type AuditRecord struct {
	Time    time.Time `json:"time"`
	TokenID string    `json:"token_id,omitempty"`
	Source  string    `json:"source,omitempty"`
	Node    string    `json:"node,omitempty"`
	Action  string    `json:"action"`
	Target  string    `json:"target,omitempty"`
	Result  string    `json:"result"`
	// Count is the number of attempts an aggregated record stands for
	// (refusals from one source in one interval); 0 means one.
	Count int `json:"count,omitempty"`
}

// AuditEntry is one link of the chain.
type AuditEntry struct {
	Seq uint64 `json:"seq"`
	AuditRecord
	// Prev is the hash of the entry before (empty for the first entry
	// ever); Hash is the hex SHA-256 of this entry's JSON with Hash empty.
	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

// Audit records audit entries, and when Type is set, applies the write they
// describe in the same log entry: if the write is refused, nothing is
// recorded and the write's error is the answer; otherwise the answer is the
// write's.
type Audit struct {
	Records []AuditRecord   `json:"records"`
	Type    CommandType     `json:"type,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
	At      time.Time       `json:"at"`
}

// Audited wraps a write and its audit record into an Audit command body.
func Audited(t CommandType, body any, rec AuditRecord) (Audit, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Audit{}, fmt.Errorf("encode %s: %w", t, err)
	}
	return Audit{Records: []AuditRecord{rec}, Type: t, Body: b, At: rec.Time}, nil
}

// entryHash is the hex SHA-256 of e's JSON encoding with Hash empty.
func entryHash(e AuditEntry) string {
	e.Hash = ""
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *state) applyAudit(c Audit) any {
	if len(c.Records) == 0 || len(c.Records) > MaxAuditRecords {
		return fmt.Errorf("%w: an audit command carries 1 to %d records", ErrInvalid, MaxAuditRecords)
	}
	for _, r := range c.Records {
		if r.Action == "" || r.Result == "" || r.Count < 0 {
			return fmt.Errorf("%w: an audit record needs an action and a result", ErrInvalid)
		}
	}
	var res any
	if c.Type != 0 {
		if c.Type == CmdAudit || c.Type == CmdInit || c.Type&IgnorableFlag != 0 {
			return fmt.Errorf("%w: an audit command cannot carry command type %d", ErrInvalid, uint8(c.Type))
		}
		res = applyWrapped(s, c.Type, c.Body)
		if _, isErr := res.(error); isErr {
			return res
		}
	}
	for _, r := range c.Records {
		s.appendAudit(r)
	}
	s.touch(c.At)
	return res
}

// applyWrapped applies the write an Audit command carries. It is set in
// init: the command table refers to applyAudit, so applyAudit cannot refer
// to the table directly.
var applyWrapped func(s *state, t CommandType, body json.RawMessage) any

func init() { applyWrapped = (*state).apply }

// appendAudit chains r onto the log and drops the oldest entries beyond
// AuditRetention.
func (s *state) appendAudit(r AuditRecord) {
	e := AuditEntry{Seq: 1, AuditRecord: r}
	if n := len(s.audit); n > 0 {
		e.Seq, e.Prev = s.audit[n-1].Seq+1, s.audit[n-1].Hash
	}
	e.Hash = entryHash(e)
	s.audit = append(s.audit, e)
	if over := len(s.audit) - AuditRetention; over > 0 {
		s.audit = append([]AuditEntry(nil), s.audit[over:]...)
	}
}

// AuditLog returns the audit entries recorded at or after since (all when
// since is zero), oldest first.
func (f *FSM) AuditLog(since time.Time) []AuditEntry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := []AuditEntry{}
	for _, e := range f.st.audit {
		if since.IsZero() || !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

// AuditBroken is VerifyAudit's answer when the chain is broken: the first
// entry that does not check, and why.
type AuditBroken struct {
	Seq    uint64
	Reason string
}

func (b *AuditBroken) Error() string {
	return fmt.Sprintf("audit log broken at entry %d: %s", b.Seq, b.Reason)
}

// VerifyAudit checks a run of audit entries: each entry's hash, each link
// to the entry before, and consecutive sequence numbers. The first entry's
// own link cannot be checked when older entries have been dropped
// (retention). It returns nil or an *AuditBroken naming the first broken
// entry.
func VerifyAudit(entries []AuditEntry) error {
	for i, e := range entries {
		if got := entryHash(e); got != e.Hash {
			return &AuditBroken{Seq: e.Seq, Reason: "its hash does not match its content (the entry was changed)"}
		}
		if i == 0 {
			if e.Seq == 1 && e.Prev != "" {
				return &AuditBroken{Seq: e.Seq, Reason: "the first entry links to an entry before it"}
			}
			continue
		}
		p := entries[i-1]
		if e.Seq != p.Seq+1 {
			return &AuditBroken{Seq: e.Seq, Reason: fmt.Sprintf("it follows entry %d (entries missing or reordered)", p.Seq)}
		}
		if e.Prev != p.Hash {
			return &AuditBroken{Seq: e.Seq, Reason: fmt.Sprintf("it does not link to entry %d (an entry before it was changed or replaced)", p.Seq)}
		}
	}
	return nil
}

// ContinueAudit returns entries followed by a new entry for r, chained onto
// them: the audit log a restored snapshot is given, so that the chain runs
// on across a restore instead of starting again from the backup's.
func ContinueAudit(entries []AuditEntry, r AuditRecord) []AuditEntry {
	s := &state{audit: append([]AuditEntry(nil), entries...)}
	s.appendAudit(r)
	return s.audit
}

// changedType is the command type observers are told of: for an Audit
// command carrying a write, the write's type.
func changedType(t CommandType, body json.RawMessage) CommandType {
	if t != CmdAudit {
		return t
	}
	var c struct {
		Type CommandType `json:"type"`
	}
	if json.Unmarshal(body, &c) == nil && c.Type != 0 {
		return c.Type
	}
	return t
}

// WithAuditLog returns the snapshot file snap with its audit log replaced by
// entries (the rest unchanged): a restore keeps the cluster's own audit log.
func WithAuditLog(snap []byte, entries []AuditEntry) ([]byte, error) {
	h := bytes.IndexByte(snap, '\n')
	if h < 0 {
		return nil, fmt.Errorf("%w: no header line", ErrSnapshotVersion)
	}
	m := bytes.IndexByte(snap[h+1:], '\n')
	if m < 0 {
		return nil, fmt.Errorf("%w: no state line", ErrSnapshotVersion)
	}
	m += h + 1
	var meta snapMeta
	if err := json.Unmarshal(snap[h+1:m], &meta); err != nil {
		return nil, fmt.Errorf("%w: cannot read the state: %v", ErrSnapshotVersion, err)
	}
	meta.Audit = entries
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(snap)+len(b))
	out = append(out, snap[:h+1]...)
	out = append(out, b...)
	return append(out, snap[m:]...), nil
}
