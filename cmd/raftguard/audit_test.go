package main

import (
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
)

func TestAuditSinceAndFormat(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if q, err := auditSince("24h", now); err != nil || q != "?since=2026-11-30T12%3A00%3A00Z" {
		t.Errorf("24h: %q %v", q, err)
	}
	if q, err := auditSince("2026-12-01T10:00:00+02:00", now); err != nil || q != "?since=2026-12-01T08%3A00%3A00Z" {
		t.Errorf("RFC 3339: %q %v", q, err)
	}
	if _, err := auditSince("yesterday", now); err == nil {
		t.Error("a bad --since was accepted")
	}
	out := formatAudit(httpapi.AuditResponse{Entries: []fsm.AuditEntry{{Seq: 7, AuditRecord: fsm.AuditRecord{
		Time: now, TokenID: "admin", Source: "192.0.2.1", Node: "n1", Action: "add-peer", Target: "laptop", Result: "ok"}}}})
	for _, want := range []string{"SEQ", "7", "add-peer", "laptop", "admin", "192.0.2.1", "n1"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if formatAudit(httpapi.AuditResponse{}) != "no audit entries\n" {
		t.Error("empty log")
	}
}
