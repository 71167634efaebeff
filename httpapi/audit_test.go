package httpapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
)

// auditOf reads node id's audit log through the API.
func (e *env) auditOf(id string) []fsm.AuditEntry {
	e.t.Helper()
	st, body, _ := e.call(id, "GET", "/v1/audit", nil)
	if st != http.StatusOK {
		e.t.Fatalf("audit via %s: %d %s", id, st, body)
	}
	var r httpapi.AuditResponse
	if err := json.Unmarshal(body, &r); err != nil {
		e.t.Fatal(err)
	}
	return r.Entries
}

// hasEntry reports whether log holds an entry matching action, target and
// result ("" matches anything).
func hasEntry(log []fsm.AuditEntry, action, target, result string) *fsm.AuditEntry {
	for i, a := range log {
		if a.Action == action && (target == "" || a.Target == target) && (result == "" || a.Result == result) {
			return &log[i]
		}
	}
	return nil
}

// TestAuditLog: admin actions through any node are recorded with the write
// they describe (token id, source, receiving node, action, target,
// result); refused authentications and joins are recorded aggregated; the
// chain verifies on every node across a leader kill and a snapshot
// restore, and never holds a token.
func TestAuditLog(t *testing.T) {
	e := newEnv(t)
	agenttest.Eventually(t, 15*time.Second, func() error {
		for _, id := range nodeIDs {
			if v := e.tc.Nodes[id].State().ClusterVersion(); v < fsm.CommandSince(fsm.CmdAudit) {
				return fmt.Errorf("%s at cluster version %d", id, v)
			}
		}
		return nil
	})
	f := e.follower()
	e.create(f, "a1")
	if st, body, _ := e.call("n1", "PATCH", "/v1/peers/a1", map[string]any{"enabled": false}); st != http.StatusOK {
		t.Fatalf("%d %s", st, body)
	}
	if st, body, _ := e.call(f, "PATCH", "/v1/cluster/settings", map[string]any{"client_dns": []string{"192.0.2.53"}}); st != http.StatusOK {
		t.Fatalf("settings: %d %s", st, body)
	}
	st, body, _ := e.call(f, "POST", "/v1/cluster/admin-tokens", map[string]any{"name": "ci"})
	if st != http.StatusCreated {
		t.Fatalf("token: %d %s", st, body)
	}
	var nt httpapi.NewTokenResponse
	_ = json.Unmarshal(body, &nt)
	if st, body, _ := e.call("n3", "DELETE", "/v1/cluster/admin-tokens/"+nt.ID, nil); st != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", st, body)
	}
	if st, body, _ := e.call(f, "POST", "/v1/cluster/token/rotate", nil); st != http.StatusOK {
		t.Fatalf("rotate: %d %s", st, body)
	}
	if st, body, _ := e.call("n2", "DELETE", "/v1/peers/a1", nil); st != http.StatusNoContent {
		t.Fatalf("delete: %d %s", st, body)
	}
	// A refused write records nothing.
	if st, _, _ := e.call(f, "DELETE", "/v1/peers/a1", nil); st != http.StatusNotFound {
		t.Fatalf("second delete: %d", st)
	}
	// Refused authentications and a refused join, aggregated.
	bad := *e.cl[f]
	bad.Token = "rgadm1.wrong-token-that-must-never-be-recorded"
	e.secret(bad.Token, "a wrong token")
	for range 5 {
		bad.Call("GET", "/v1/peers", nil)
	}
	if st, _, _ := joinCert(t, e, f, "rgjoin1.bad", "intruder", "127.0.0.1"); st != http.StatusUnauthorized {
		t.Fatalf("bad join token: %d", st)
	}

	var log []fsm.AuditEntry
	agenttest.Eventually(t, 30*time.Second, func() error {
		log = e.auditOf(f)
		if r := hasEntry(log, "authenticate", "", "unauthorized"); r == nil || r.Count < 5 {
			return fmt.Errorf("refused authentications not recorded yet")
		}
		if hasEntry(log, "join", "", "bad_join_token") == nil {
			return fmt.Errorf("refused join not recorded yet")
		}
		return nil
	})
	for _, w := range []struct{ action, target string }{
		{"add-peer", "a1"}, {"update-peer", "a1"}, {"delete-peer", "a1"}, {"update-settings", ""},
		{"add-admin-token", nt.ID}, {"revoke-admin-token", nt.ID}, {"set-join-token", ""},
	} {
		a := hasEntry(log, w.action, w.target, "ok")
		if a == nil {
			t.Errorf("no %s %s entry in %+v", w.action, w.target, log)
			continue
		}
		// The test clients use each node's own admin token (n1's is the
		// bootstrap token).
		want := "node-" + a.Node
		if a.Node == "n1" {
			want = "admin"
		}
		if a.TokenID != want || a.Source != "127.0.0.1" || a.Time.IsZero() {
			t.Errorf("%s entry: %+v", w.action, a)
		}
	}
	if a := hasEntry(log, "add-peer", "a1", ""); a != nil && a.Node != f {
		t.Errorf("add-peer sent to %s recorded node %q", f, a.Node)
	}
	if n := len(slices.DeleteFunc(slices.Clone(log), func(a fsm.AuditEntry) bool { return a.Action != "delete-peer" })); n != 1 {
		t.Errorf("%d delete-peer entries, want 1 (the refused one records nothing)", n)
	}
	if err := fsm.VerifyAudit(log); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(log)
	if strings.Contains(string(b), "rgadm1.") || strings.Contains(string(b), "rgjoin1.") {
		t.Fatal("the audit log holds a token")
	}

	// Across a leader kill: every entry stays, the chain goes on.
	before := len(log)
	old := e.leader().NodeID()
	e.tc.Stop(old)
	e.tc.WaitLeader(old)
	var alive []string
	for _, id := range nodeIDs {
		if id != old {
			alive = append(alive, id)
		}
	}
	e.create(alive[0], "after-kill")
	// Across a restore: the backup's audit log is not taken; the restore
	// is recorded and the chain goes on.
	st, snap, _ := e.cl[alive[1]].Call("GET", "/v1/cluster/snapshot", nil)
	if st != http.StatusOK {
		t.Fatalf("save: %d", st)
	}
	e.create(alive[1], "after-save")
	if st, body, _ := e.call(alive[0], "POST", "/v1/cluster/snapshot/restore", snap); st != http.StatusOK {
		t.Fatalf("restore: %d %s", st, body)
	}
	e.create(alive[1], "after-restore")
	agenttest.Eventually(t, 10*time.Second, func() error {
		for _, id := range alive {
			log := e.auditOf(id)
			if err := fsm.VerifyAudit(log); err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			if len(log) < before+4 || log[0].Seq != 1 {
				return fmt.Errorf("%s holds %d entries from %d", id, len(log), log[0].Seq)
			}
			for _, w := range []struct{ action, target string }{
				{"add-peer", "after-kill"}, {"add-peer", "after-save"}, {"restore-snapshot", ""}, {"add-peer", "after-restore"},
			} {
				if hasEntry(log, w.action, w.target, "ok") == nil {
					return fmt.Errorf("%s: no %s %s entry", id, w.action, w.target)
				}
			}
		}
		return nil
	})
	// The audit log is read-only: no route changes it.
	if st, _, _ := e.call(alive[0], "POST", "/v1/cluster/audit/refusals", map[string]any{"records": []any{map[string]any{"action": "x", "result": "y"}}}); st != http.StatusForbidden {
		t.Fatalf("refusals from a client: %d", st)
	}
	var broken *fsm.AuditBroken
	tampered := e.auditOf(alive[0])
	tampered[1].Result = "refused"
	if err := fsm.VerifyAudit(tampered); !errors.As(err, &broken) || broken.Seq != tampered[1].Seq {
		t.Fatalf("tampered entry: %v", err)
	}
	e.scanSecrets()
}
