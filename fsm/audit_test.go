package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func TestAuditChain(t *testing.T) {
	h := newHarness(t, "10.0.0.0/24", "")
	h.mustOK(CmdSetClusterVersion, SetClusterVersion{Version: CommandSince(CmdAudit)})
	rec := func(action, target, result string) AuditRecord {
		return AuditRecord{Time: t0, TokenID: "admin", Source: "192.0.2.1", Node: "n1", Action: action, Target: target, Result: result}
	}
	a, err := Audited(CmdAddPeer, AddPeer{Name: "a", PublicKey: seqKey(1), Enabled: true, At: t0}, rec("add-peer", "a", "ok"))
	if err != nil {
		t.Fatal(err)
	}
	if res, ok := h.mustOK(CmdAudit, a).(AddPeerResult); !ok || !res.Created {
		t.Fatalf("the write's answer is not passed on: %#v", res)
	}
	// A refused write records nothing and answers the write's error.
	dup, _ := Audited(CmdAddPeer, AddPeer{Name: "a", PublicKey: seqKey(2), At: t0}, rec("add-peer", "a", "ok"))
	if res, _ := h.apply(CmdAudit, dup).(error); !errors.Is(res, ErrDuplicateName) {
		t.Fatalf("refused write: %v", res)
	}
	h.mustOK(CmdAudit, Audit{Records: []AuditRecord{rec("auth", "/v1/peers", "refused"), rec("join", "", "refused")}, At: t0})
	for _, bad := range []Audit{{At: t0}, {Records: []AuditRecord{{Action: "x"}}}, {Records: []AuditRecord{rec("x", "", "ok")}, Type: CmdInit, Body: []byte(`{}`)}} {
		if res, _ := h.apply(CmdAudit, bad).(error); !errors.Is(res, ErrInvalid) {
			t.Errorf("%+v: %v", bad, res)
		}
	}
	log := h.f.AuditLog(time.Time{})
	if len(log) != 3 || log[0].Seq != 1 || log[2].Seq != 3 || log[0].Action != "add-peer" {
		t.Fatalf("log %+v", log)
	}
	if err := VerifyAudit(log); err != nil {
		t.Fatal(err)
	}
	if got := h.f.AuditLog(t0.Add(time.Second)); len(got) != 0 {
		t.Fatalf("since filter: %d entries", len(got))
	}

	// A tampered entry in a snapshot loads, and verify names it.
	snap := h.snapshotBytes()
	tampered := bytes.Replace(snap, []byte(`"result":"refused"`), []byte(`"result":"ok"`), 1)
	if bytes.Equal(tampered, snap) {
		t.Fatal("edit did nothing")
	}
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(tampered))); err != nil {
		t.Fatal(err)
	}
	var broken *AuditBroken
	if err := VerifyAudit(g.AuditLog(time.Time{})); !errors.As(err, &broken) || broken.Seq != 2 {
		t.Fatalf("tampered entry: %v", err)
	}
	// Dropping an entry breaks the link of the one after it.
	if err := VerifyAudit([]AuditEntry{log[0], log[2]}); !errors.As(err, &broken) || broken.Seq != 3 {
		t.Fatalf("dropped entry: %v", err)
	}
	// A rehashed forgery still breaks the next link.
	forged := append([]AuditEntry(nil), log...)
	forged[1].Result = "ok"
	forged[1].Hash = entryHash(forged[1])
	if err := VerifyAudit(forged); !errors.As(err, &broken) || broken.Seq != 3 {
		t.Fatalf("rehashed entry: %v", err)
	}

	// A restore keeps the cluster's chain and adds to it.
	cont := ContinueAudit(log, rec("restore", "", "ok"))
	spliced, err := WithAuditLog(snap, cont)
	if err != nil {
		t.Fatal(err)
	}
	r := New(nil)
	if err := r.Restore(io.NopCloser(bytes.NewReader(spliced))); err != nil {
		t.Fatal(err)
	}
	if got := r.AuditLog(time.Time{}); len(got) != 4 || got[3].Action != "restore" || VerifyAudit(got) != nil {
		t.Fatalf("after restore: %+v", got)
	}
}

func TestAuditRetention(t *testing.T) {
	s := &state{}
	for range AuditRetention + 10 {
		s.appendAudit(AuditRecord{Time: t0, Action: "x", Result: "ok"})
	}
	if len(s.audit) != AuditRetention || s.audit[0].Seq != 11 {
		t.Fatalf("%d entries from %d", len(s.audit), s.audit[0].Seq)
	}
	if err := VerifyAudit(s.audit); err != nil {
		t.Fatal(err)
	}
}
