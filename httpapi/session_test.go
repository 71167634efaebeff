package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/apiclient"
)

// browserCall sends a request the way the console does: with the session
// cookie (if any) and the CSRF header (if any), no bearer token.
func (e *env) browserCall(id, method, path string, cookie *http.Cookie, csrf string, in any) (int, []byte, http.Header) {
	e.t.Helper()
	cl := e.cl[id]
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	h := http.Header{}
	if in != nil {
		h.Set("Content-Type", "application/json")
	}
	if cookie != nil {
		h.Set("Cookie", (&http.Cookie{Name: cookie.Name, Value: cookie.Value}).String())
	}
	if csrf != "" {
		h.Set(httpapi.HeaderCSRF, csrf)
	}
	browser := apiclient.Client{Base: cl.Base, HTTP: cl.HTTP}
	resp, err := browser.Send(context.Background(), method, path, h, body)
	if err != nil {
		return 0, []byte(err.Error()), nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	e.mu.Lock()
	e.bodies = append(e.bodies, fmt.Sprintf("%s %s via %s -> %d: %s", method, path, id, resp.StatusCode, data))
	e.mu.Unlock()
	return resp.StatusCode, data, resp.Header
}

func sessionCookie(t *testing.T, hdr http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: hdr}).Cookies() {
		if c.Name == httpapi.SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", httpapi.SessionCookie, hdr)
	return nil
}

// TestConsoleSession: a login on a follower gives a cookie with the right
// flags that every node accepts; writes need the CSRF token; a logout ends
// the session on every node; the secret never shows in an answer or a log.
func TestConsoleSession(t *testing.T) {
	e := newEnv(t)
	fol := e.follower()
	token := e.cl["n1"].Token
	e.secret(token, "the admin token")

	if st, body, _ := e.browserCall(fol, "POST", "/v1/session", nil, "", map[string]string{"token": "rgadm_wrong"}); st != http.StatusUnauthorized {
		t.Fatalf("login with a wrong token: %d %s", st, body)
	}
	if st, body, _ := e.browserCall(fol, "GET", "/v1/session", nil, "", nil); st != http.StatusUnauthorized || agenttest.ErrorCode(body) != "no_session" {
		t.Fatalf("session without a cookie: %d %s", st, body)
	}
	st, body, hdr := e.browserCall(fol, "POST", "/v1/session", nil, "", map[string]string{"token": token})
	if st != http.StatusCreated {
		t.Fatalf("login: %d %s", st, body)
	}
	c := sessionCookie(t, hdr)
	e.secret(c.Value, "the session secret")
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || c.MaxAge <= 0 || c.Expires.IsZero() {
		t.Fatalf("cookie flags: %+v", c)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("login answer may be cached: %q", hdr.Get("Cache-Control"))
	}
	var ses httpapi.SessionView
	if err := json.Unmarshal(body, &ses); err != nil || ses.CSRFToken == "" || ses.TokenID == "" || time.Until(ses.ExpiresAt) < time.Hour {
		t.Fatalf("session answer %s: %v", body, err)
	}

	// Any node accepts the cookie, at once on the node that logged in.
	for _, id := range nodeIDs {
		agenttest.Eventually(t, 5*time.Second, func() error {
			if st, body, _ := e.browserCall(id, "GET", "/v1/peers", c, "", nil); st != http.StatusOK {
				return fmt.Errorf("%s: %d %s", id, st, body)
			}
			return nil
		})
		st, body, _ := e.browserCall(id, "GET", "/v1/session", c, "", nil)
		var again httpapi.SessionView
		if st != http.StatusOK || json.Unmarshal(body, &again) != nil || again.CSRFToken != ses.CSRFToken || again.NodeID != id {
			t.Fatalf("GET /v1/session on %s: %d %s", id, st, body)
		}
	}

	// Writes need the session's CSRF token, on the leader and through a
	// follower alike.
	for _, id := range nodeIDs {
		for _, csrf := range []string{"", "wrong", strings.ToUpper(ses.CSRFToken)} {
			st, body, _ := e.browserCall(id, "POST", "/v1/peers", c, csrf, map[string]string{"name": "csrf-" + id})
			if st != http.StatusForbidden || agenttest.ErrorCode(body) != "csrf_required" {
				t.Fatalf("write on %s with CSRF %q: %d %s", id, csrf, st, body)
			}
		}
		st, body, _ := e.browserCall(id, "DELETE", "/v1/session", c, "", nil)
		if st != http.StatusForbidden {
			t.Fatalf("logout without CSRF on %s: %d %s", id, st, body)
		}
	}
	if _, ok := e.leader().State().Peer("csrf-n1"); ok {
		t.Fatal("a write without the CSRF token took effect")
	}
	st, body, _ = e.browserCall(fol, "POST", "/v1/peers", c, ses.CSRFToken, map[string]string{"name": "via-console"})
	if st != http.StatusCreated {
		t.Fatalf("create with the session on a follower: %d %s", st, body)
	}
	// The QR route renders a posted text and needs the session too.
	if st, body, _ := e.browserCall(fol, "POST", "/v1/qr", c, "", map[string]string{"text": "x"}); st != http.StatusForbidden {
		t.Fatalf("QR without CSRF: %d %s", st, body)
	}
	st, body, hdr = e.browserCall(fol, "POST", "/v1/qr", c, ses.CSRFToken, map[string]string{"text": decodePeer(t, body).Config})
	if st != http.StatusOK || hdr.Get("Content-Type") != "image/png" || !bytes.HasPrefix(body, []byte("\x89PNG")) {
		t.Fatalf("QR: %d %s %.40q", st, hdr.Get("Content-Type"), body)
	}

	// A second session, then log the first out through another follower.
	other := ""
	for _, id := range nodeIDs {
		if id != fol && !e.tc.Nodes[id].IsLeader() {
			other = id
		}
	}
	st, _, hdr = e.browserCall("n1", "POST", "/v1/session", nil, "", map[string]string{"token": token})
	if st != http.StatusCreated {
		t.Fatalf("second login: %d", st)
	}
	c2 := sessionCookie(t, hdr)
	e.secret(c2.Value, "the second session secret")
	st, body, hdr = e.browserCall(other, "DELETE", "/v1/session", c, ses.CSRFToken, nil)
	if st != http.StatusNoContent {
		t.Fatalf("logout: %d %s", st, body)
	}
	if cleared := sessionCookie(t, hdr); cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Fatalf("logout did not clear the cookie: %+v", cleared)
	}
	if st, body, _ := e.browserCall(other, "GET", "/v1/peers", c, "", nil); st != http.StatusUnauthorized || agenttest.ErrorCode(body) != "session_expired" {
		t.Fatalf("the logged-out session still works on the node that logged it out: %d %s", st, body)
	}
	for _, id := range nodeIDs {
		agenttest.Eventually(t, 5*time.Second, func() error {
			if st, _, _ := e.browserCall(id, "GET", "/v1/peers", c, "", nil); st != http.StatusUnauthorized {
				return fmt.Errorf("%s still accepts the logged-out session: %d", id, st)
			}
			return nil
		})
		if st, body, _ := e.browserCall(id, "GET", "/v1/peers", c2, "", nil); st != http.StatusOK {
			t.Fatalf("the other session stopped working on %s: %d %s", id, st, body)
		}
	}
	// Revoking the admin token a session was opened with ends it.
	st, body, _ = e.call("n1", "POST", "/v1/cluster/admin-tokens", map[string]string{"name": "ops"})
	if st != http.StatusCreated {
		t.Fatalf("create admin token: %d %s", st, body)
	}
	var nt httpapi.NewTokenResponse
	_ = json.Unmarshal(body, &nt)
	// (On n1, which has applied the token it created.)
	_, _, hdr = e.browserCall("n1", "POST", "/v1/session", nil, "", map[string]string{"token": nt.Token})
	c3 := sessionCookie(t, hdr)
	e.secret(c3.Value, "the third session secret")
	if st, _, _ := e.call("n1", "DELETE", "/v1/cluster/admin-tokens/"+nt.ID, nil); st != http.StatusNoContent {
		t.Fatalf("revoke: %d", st)
	}
	agenttest.Eventually(t, 5*time.Second, func() error {
		if st, _, _ := e.browserCall("n1", "GET", "/v1/peers", c3, "", nil); st != http.StatusUnauthorized {
			return fmt.Errorf("session of a revoked token: %d", st)
		}
		return nil
	})
	// The audit log names the token behind each console action.
	agenttest.Eventually(t, 10*time.Second, func() error {
		st, body, _ := e.call("n1", "GET", "/v1/audit?consistent=true", nil)
		if st != http.StatusOK {
			return fmt.Errorf("audit: %d %s", st, body)
		}
		var log httpapi.AuditResponse
		if err := json.Unmarshal(body, &log); err != nil {
			return err
		}
		want := map[string]bool{"create-session": false, "add-peer via-console": false, "delete-session": false}
		for _, en := range log.Entries {
			key := en.Action
			if en.Target == "via-console" {
				key += " via-console"
			}
			if _, ok := want[key]; ok && en.TokenID == ses.TokenID {
				want[key] = true
			}
		}
		for k, ok := range want {
			if !ok {
				return fmt.Errorf("no audit entry %q by token %s", k, ses.TokenID)
			}
		}
		return nil
	})
	e.scanSecrets()
}

// TestConsoleLoginLimited: failed console logins and unknown session
// cookies count in the same limiter as bad bearer tokens.
func TestConsoleLoginLimited(t *testing.T) {
	e := newEnv(t)
	fol := e.follower()
	for i := 0; i < 10; i++ {
		if st, _, _ := e.browserCall(fol, "POST", "/v1/session", nil, "", map[string]string{"token": "rgadm_wrong"}); st != http.StatusUnauthorized {
			t.Fatalf("bad login %d: %d", i, st)
		}
		wrong := apiclient.Client{Base: e.cl[fol].Base, Token: "wrong", HTTP: e.cl[fol].HTTP}
		resp, err := wrong.Send(context.Background(), "GET", "/v1/peers", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Locked out: wrong tokens and unknown sessions answer 429; as with
	// bearer tokens, a valid token still logs in.
	st, body, hdr := e.browserCall(fol, "POST", "/v1/session", nil, "", map[string]string{"token": "rgadm_wrong"})
	if st != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("bad login after 20 failures: %d %s", st, body)
	}
	if st, body, _ := e.browserCall(fol, "GET", "/v1/peers", &http.Cookie{Name: httpapi.SessionCookie, Value: "guess"}, "", nil); st != http.StatusTooManyRequests {
		t.Fatalf("unknown session after 20 failures: %d %s", st, body)
	}
	st, body, _ = e.browserCall(fol, "POST", "/v1/session", nil, "", map[string]string{"token": e.cl["n1"].Token})
	if st != http.StatusCreated {
		t.Fatalf("valid login from a locked-out address: %d %s", st, body)
	}
}

// TestConsolePages: the console is served with its security headers on
// every node.
func TestConsolePages(t *testing.T) {
	e := newEnv(t)
	for _, id := range nodeIDs {
		for path, ctype := range map[string]string{"/": "text/html", "/assets/app.js": "javascript", "/assets/style.css": "text/css"} {
			resp, err := e.cl[id].HTTP.Get(e.cl[id].Base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != http.StatusOK || !strings.Contains(h.Get("Content-Type"), ctype) || len(body) == 0 {
				t.Fatalf("%s %s: %d %s", id, path, resp.StatusCode, h.Get("Content-Type"))
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s %s: CSP %q lacks %q", id, path, csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP allows inline script: %q", csp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("%s %s: headers %v", id, path, h)
			}
		}
		resp, err := e.cl[id].HTTP.Get(e.cl[id].Base + "/assets/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("directory listing: %d", resp.StatusCode)
		}
	}
}

// TestConsoleSessionGateAndExpiry: a login waits for the cluster version
// that has sessions, and a session stops working at its expiry.
func TestConsoleSessionGateAndExpiry(t *testing.T) {
	a := newFuzzAPI(t)
	api := httpapi.New(httpapi.Config{Backend: a.b, SessionTTL: 1500 * time.Millisecond, LeaderWait: 100 * time.Millisecond})
	t.Cleanup(api.Close)
	h := api.Handler()
	do := func(method, path, body string, c *http.Cookie) *http.Response {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if c != nil {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	login := `{"token":"` + a.token + `"}`
	if resp := do("POST", "/v1/session", login, nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("login at cluster version 1: %d", resp.StatusCode)
	}
	if _, err := a.b.Apply(fsm.CmdSetClusterVersion, fsm.SetClusterVersion{Version: fsm.ProtocolVersion, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	resp := do("POST", "/v1/session", login, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	c := sessionCookie(t, resp.Header)
	if resp := do("GET", "/v1/peers", "", c); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh session: %d", resp.StatusCode)
	}
	agenttest.Eventually(t, 5*time.Second, func() error {
		if resp := do("GET", "/v1/peers", "", c); resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("session past its expiry: %d", resp.StatusCode)
		}
		return nil
	})
}
