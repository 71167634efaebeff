package hetzner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"
	"github.com/raftguard/raftguard/vip"
	"github.com/raftguard/raftguard/vip/viptest"
)

const testToken = "hc-test-token-5ecr3t-must-never-show"

// fakeAPI answers the Hetzner Cloud API endpoints the SDK calls for this
// mode (GET /v1/floating_ips, POST /v1/floating_ips/{id}/actions/assign,
// GET /v1/actions) and the metadata service's instance-id, as documented
// at docs.hetzner.cloud, on a loopback TLS server.
type fakeAPI struct {
	srv *httptest.Server

	mu              sync.Mutex // guards the fields below
	fips            []fakeFIP
	actions         map[int64]string // id -> status it reports when polled
	nextAct         int64
	calls           map[string]int      // "METHOD /path" -> count
	*viptest.Faults                     // by "METHOD /path"
	actError        bool                // assign actions finish with status error
	echoAuth        bool                // 401 errors quote the Authorization header
	assigned        []string            // "fip->server" in order
	metaID          string              // instance-id answer; "" is 404
	metaHits        int                 // metadata requests
	seenAuth        map[string]struct{} // Authorization headers seen
}

type fakeFIP struct {
	ID     int64
	IP     string // "203.0.113.10" or "2001:db8:5::/64"
	Server int64  // 0: unassigned
}

func newFakeAPI(t *testing.T, fips ...fakeFIP) *fakeAPI {
	f := &fakeAPI{
		fips: fips, actions: map[int64]string{}, nextAct: 100,
		calls: map[string]int{}, Faults: viptest.NewFaults(), metaID: "42", seenAuth: map[string]struct{}{},
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() { f.Close(); f.srv.Close() })
	return f
}

func (f *fakeAPI) key(r *http.Request) string {
	p := r.URL.Path
	if strings.HasPrefix(p, "/v1/floating_ips/") && strings.HasSuffix(p, "/actions/assign") {
		p = "/v1/floating_ips/{id}/actions/assign"
	}
	return r.Method + " " + p
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	k := f.key(r)
	f.mu.Lock()
	f.calls[k]++
	status, slow := f.Next(k)
	f.mu.Unlock()
	if slow {
		f.Hang(r)
		return
	}
	if r.URL.Path == "/hetzner/v1/metadata/instance-id" {
		f.mu.Lock()
		f.metaHits++
		id := f.metaID
		f.mu.Unlock()
		if id == "" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(id))
		return
	}
	auth := r.Header.Get("Authorization")
	f.mu.Lock()
	f.seenAuth[auth] = struct{}{}
	echo := f.echoAuth
	f.mu.Unlock()
	if auth != "Bearer "+testToken {
		msg := "unable to authenticate"
		if echo {
			msg += ": got " + auth
		}
		apiError(w, http.StatusUnauthorized, "unauthorized", msg)
		return
	}
	switch status {
	case 0:
	case http.StatusTooManyRequests:
		apiError(w, status, "rate_limit_exceeded", "limit of 3600 requests per hour reached")
		return
	default:
		if status >= 500 {
			w.WriteHeader(status) // a proxy's bare answer, no JSON body
			return
		}
		apiError(w, status, "invalid_input", "refused")
		return
	}
	switch k {
	case "GET /v1/floating_ips":
		f.mu.Lock()
		var list []map[string]any
		for _, fp := range f.fips {
			typ := "ipv4"
			if strings.Contains(fp.IP, ":") {
				typ = "ipv6"
			}
			var srv any
			if fp.Server != 0 {
				srv = fp.Server
			}
			list = append(list, map[string]any{
				"id": fp.ID, "ip": fp.IP, "type": typ, "server": srv, "name": fmt.Sprintf("fip-%d", fp.ID),
				"description": nil, "created": "2026-01-01T00:00:00Z", "dns_ptr": []any{}, "blocked": false,
				"home_location": map[string]any{"id": 1, "name": "fsn1"}, "protection": map[string]any{"delete": false}, "labels": map[string]string{},
			})
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"floating_ips": list, "meta": map[string]any{"pagination": map[string]any{
			"page": 1, "per_page": 50, "previous_page": nil, "next_page": nil, "last_page": 1, "total_entries": len(list)}}})
	case "POST /v1/floating_ips/{id}/actions/assign":
		id, _ := strconv.ParseInt(strings.Split(r.URL.Path, "/")[3], 10, 64)
		var body struct {
			Server int64 `json:"server"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Server == 0 {
			apiError(w, http.StatusBadRequest, "invalid_input", "server missing")
			return
		}
		f.mu.Lock()
		found := false
		for i := range f.fips {
			if f.fips[i].ID == id {
				f.fips[i].Server, found = body.Server, true
			}
		}
		f.nextAct++
		act := f.nextAct
		final := "success"
		if f.actError {
			final = "error"
		}
		f.actions[act] = final
		f.assigned = append(f.assigned, fmt.Sprintf("%d->%d", id, body.Server))
		f.mu.Unlock()
		if !found {
			apiError(w, http.StatusNotFound, "not_found", "floating IP not found")
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"action": map[string]any{
			"id": act, "command": "assign_floating_ip", "status": "running", "progress": 0,
			"started": "2026-01-01T00:00:00Z", "finished": nil, "error": nil,
			"resources": []any{map[string]any{"id": id, "type": "floating_ip"}, map[string]any{"id": body.Server, "type": "server"}}}})
	case "GET /v1/actions":
		var out []map[string]any
		f.mu.Lock()
		for _, s := range r.URL.Query()["id"] {
			id, _ := strconv.ParseInt(s, 10, 64)
			st, ok := f.actions[id]
			if !ok {
				continue
			}
			a := map[string]any{"id": id, "command": "assign_floating_ip", "status": st, "progress": 100,
				"started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:01Z", "error": nil, "resources": []any{}}
			if st == "error" {
				a["error"] = map[string]any{"code": "server_error", "message": "assignment failed"}
			}
			out = append(out, a)
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"actions": out, "meta": map[string]any{"pagination": map[string]any{
			"page": 1, "per_page": 50, "previous_page": nil, "next_page": nil, "last_page": 1, "total_entries": len(out)}}})
	default:
		apiError(w, http.StatusNotFound, "not_found", "no route "+k)
	}
}

func (f *fakeAPI) count(k string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[k]
}

func (f *fakeAPI) server(id int64) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fp := range f.fips {
		if fp.ID == id {
			return fp.Server
		}
	}
	return -1
}

func (f *fakeAPI) set(fn func(f *fakeAPI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// newMode is a Mode talking to f only, logging into log.
func newMode(t *testing.T, f *fakeAPI, serverID int64, log *bytes.Buffer) *Mode {
	t.Helper()
	var l *slog.Logger
	if log != nil {
		l = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := New(Config{
		Token: testToken, ServerID: serverID,
		Endpoint: f.srv.URL + "/v1", MetadataEndpoint: f.srv.URL + "/hetzner/v1/metadata",
		HTTPClient: f.srv.Client(), RetryBase: 5 * time.Millisecond, PollInterval: 5 * time.Millisecond, Log: l,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	vip4 = netip.MustParsePrefix("203.0.113.10/32")
	vip6 = netip.MustParsePrefix("2001:db8:5::1/64")
)

func TestAssignAndHeld(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10", Server: 7}, fakeFIP{ID: 2, IP: "2001:db8:5::/64"}, fakeFIP{ID: 3, IP: "198.51.100.9", Server: 7})
	var log bytes.Buffer
	m := newMode(t, f, 0, &log) // the server id comes from the metadata service
	ctx := context.Background()
	vips := []netip.Prefix{vip4, vip6}

	if held, err := m.Held(ctx, vips); err != nil || held {
		t.Fatalf("held before acquire: %v %v", held, err)
	}
	changed, err := m.Acquire(ctx, vips)
	if err != nil || !changed {
		t.Fatalf("acquire: %v %v", changed, err)
	}
	if f.server(1) != 42 || f.server(2) != 42 || f.server(3) != 7 {
		t.Fatalf("assignments: 1->%d 2->%d 3->%d", f.server(1), f.server(2), f.server(3))
	}
	if held, err := m.Held(ctx, vips); err != nil || !held {
		t.Fatalf("held after acquire: %v %v", held, err)
	}
	// Idempotent: nothing to assign.
	n := f.count("POST /v1/floating_ips/{id}/actions/assign")
	if changed, err := m.Acquire(ctx, vips); err != nil || changed {
		t.Fatalf("second acquire: %v %v", changed, err)
	}
	if got := f.count("POST /v1/floating_ips/{id}/actions/assign"); got != n {
		t.Fatalf("second acquire assigned again: %d calls", got)
	}
	f.set(func(f *fakeAPI) { f.metaHits = 0 })
	// Another server takes one: no longer held.
	f.set(func(f *fakeAPI) { f.fips[1].Server = 9 })
	if held, err := m.Held(ctx, vips); err != nil || held {
		t.Fatalf("held after another server took the IPv6 one: %v %v", held, err)
	}
	var hits int
	f.set(func(f *fakeAPI) { hits = f.metaHits })
	if hits != 0 {
		t.Fatal("the metadata service was asked again: the id is cached")
	}
	// Release leaves the assignment to the next leader.
	if changed, err := m.Release(ctx, vips); err != nil || changed {
		t.Fatalf("release: %v %v", changed, err)
	}
	if f.server(1) != 42 {
		t.Fatal("release unassigned the floating IP")
	}
	if !strings.Contains(log.String(), "floating IP assigned") {
		t.Fatalf("no log of the assignment:\n%s", log.String())
	}
}

func TestRateLimitedThenAssigned(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10"})
	f.Fail["POST /v1/floating_ips/{id}/actions/assign"] = []int{429, 429}
	m := newMode(t, f, 42, nil)
	changed, err := m.Acquire(context.Background(), []netip.Prefix{vip4})
	if err != nil || !changed {
		t.Fatalf("acquire after 429s: %v %v", changed, err)
	}
	if n := f.count("POST /v1/floating_ips/{id}/actions/assign"); n != 3 {
		t.Fatalf("assign calls: %d, want 3 (two rate-limited, retried)", n)
	}
	if f.server(1) != 42 {
		t.Fatal("not assigned")
	}
}

func TestServerErrorIsReported(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10"})
	f.Fail["GET /v1/floating_ips"] = []int{500}
	m := newMode(t, f, 42, nil)
	_, err := m.Acquire(context.Background(), []netip.Prefix{vip4})
	if err == nil || !strings.Contains(err.Error(), "list floating IPs") || !strings.Contains(err.Error(), "500") {
		t.Fatalf("acquire against a 500: %v", err)
	}
	if f.server(1) != 0 {
		t.Fatal("assigned despite the error")
	}
}

func TestActionErrorIsReported(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10"})
	f.actError = true
	m := newMode(t, f, 42, nil)
	_, err := m.Acquire(context.Background(), []netip.Prefix{vip4})
	if err == nil || !strings.Contains(err.Error(), "assignment failed") {
		t.Fatalf("acquire with a failing action: %v", err)
	}
}

func TestSlowAPIBoundedByContext(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10"})
	f.Slow["GET /v1/floating_ips"] = true
	m := newMode(t, f, 42, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.Acquire(ctx, []netip.Prefix{vip4})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire against a hanging API: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("acquire took %v past its 200ms deadline", d)
	}
}

func TestUnknownFloatingIP(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10"})
	m := newMode(t, f, 42, nil)
	other := netip.MustParsePrefix("192.0.2.77/32")
	_, err := m.Acquire(context.Background(), []netip.Prefix{vip4, other})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "192.0.2.77") {
		t.Fatalf("acquire of an address no floating IP holds: %v", err)
	}
	if f.server(1) != 0 || f.count("POST /v1/floating_ips/{id}/actions/assign") != 0 {
		t.Fatal("something was assigned although one VIP has no floating IP")
	}
	if _, err := m.Held(context.Background(), []netip.Prefix{other}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("held: %v", err)
	}
}

func TestNoServerID(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10"})
	f.metaID = ""
	m := newMode(t, f, 0, nil)
	_, err := m.Acquire(context.Background(), []netip.Prefix{vip4})
	if !errors.Is(err, ErrServerID) || !strings.Contains(err.Error(), "--hetzner-server-id") {
		t.Fatalf("acquire without a server id: %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrNoToken) {
		t.Fatalf("New without a token: %v", err)
	}
}

// TestTokenNeverShown: neither errors nor logs carry the token, even when
// the API quotes the Authorization header back.
func TestTokenNeverShown(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10"})
	f.echoAuth = true
	var log bytes.Buffer
	l := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// A token the fake does not accept: its 401 quotes the header.
	wrong := testToken + "-old"
	m, err := New(Config{Token: wrong, ServerID: 42, Endpoint: f.srv.URL + "/v1", HTTPClient: f.srv.Client(), RetryBase: time.Millisecond, Log: l})
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	_, err = m.Acquire(context.Background(), []netip.Prefix{vip4})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("acquire with a wrong token: %v", err)
	}
	errs = append(errs, err.Error())

	// Through a Runner, whose log records every failure.
	good := newMode(t, f, 42, &log)
	f.set(func(f *fakeAPI) { f.Fail["GET /v1/floating_ips"] = []int{500, 429, 503} })
	r := vip.NewRunner(vip.RunnerConfig{Local: &viptest.Local{}, Mode: good, Log: l, Backoff: vip.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	defer r.Close(time.Second)
	if _, err := r.Claim([]netip.Prefix{vip4}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return r.Status().Held })
	r2 := vip.NewRunner(vip.RunnerConfig{Local: &viptest.Local{}, Mode: m, Log: l, Backoff: vip.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	defer r2.Close(time.Second)
	if _, err := r2.Claim([]netip.Prefix{vip4}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return r2.Status().Failures >= 2 })
	errs = append(errs, r2.Status().Error)

	if _, ok := f.seenAuth["Bearer "+wrong]; !ok {
		t.Fatal("the wrong token never reached the API: the test proves nothing")
	}
	for _, s := range append(errs, log.String()) {
		if strings.Contains(s, testToken) {
			t.Fatalf("the token appears in:\n%s", s)
		}
	}
	if !strings.Contains(log.String(), "[token]") {
		t.Fatalf("the quoted header was not redacted in the log:\n%s", log.String())
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := ReadTokenFile(p); err != nil || tok != testToken {
		t.Fatalf("read: %q %v", tok, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadTokenFile(p)
	if !errors.Is(err, ErrTokenFile) || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), testToken) {
		t.Fatalf("a world-readable token file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokenFile(empty); !errors.Is(err, ErrTokenFile) {
		t.Fatalf("an empty token file: %v", err)
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, ErrTokenFile) {
		t.Fatalf("a missing token file: %v", err)
	}
	if _, err := ReadTokenFile(""); !errors.Is(err, ErrNoToken) {
		t.Fatalf("no token file: %v", err)
	}
}

// TestRunnerRetriesAndReports drives the mode through vip.Runner: a 5xx
// then a rate limit beyond the SDK's retries fail attempts that the status
// reports; the Runner retries until the assignment holds. A hanging API
// fails by the Runner's op timeout without stalling Claim.
func TestRunnerRetriesAndReports(t *testing.T) {
	f := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10", Server: 7})
	f.Fail["GET /v1/floating_ips"] = []int{500}
	f.Fail["POST /v1/floating_ips/{id}/actions/assign"] = []int{429, 429, 429, 429} // the SDK gives up after 3 retries
	m := newMode(t, f, 42, nil)
	r := vip.NewRunner(vip.RunnerConfig{Local: &viptest.Local{}, Mode: m, Backoff: vip.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}, OpTimeout: 5 * time.Second})
	defer r.Close(time.Second)
	vips := []netip.Prefix{vip4}
	if _, err := r.Claim(vips); err != nil {
		t.Fatal(err)
	}
	sawErrors := viptest.WaitHeld(t, r)
	if held, err := r.Held(vips); err != nil || !held {
		t.Fatalf("runner held: %v %v", held, err)
	}
	if f.server(1) != 42 {
		t.Fatal("not assigned")
	}
	if st := r.Status(); st.Error != "" || st.Failures != 0 || st.Mode != Name {
		t.Fatalf("status after success: %+v", st)
	}
	if len(sawErrors) == 0 {
		t.Fatal("the failed attempts were never reported")
	}

	// A hanging API: the attempt ends at the op timeout; Claim returns at once.
	h := newFakeAPI(t, fakeFIP{ID: 1, IP: "203.0.113.10"})
	h.Slow["GET /v1/floating_ips"] = true
	r2 := vip.NewRunner(vip.RunnerConfig{Local: &viptest.Local{}, Mode: newMode(t, h, 42, nil), Backoff: vip.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}, OpTimeout: 100 * time.Millisecond})
	defer r2.Close(time.Second)
	start := time.Now()
	if _, err := r2.Claim(vips); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Claim took %v: a slow API stalled the caller", d)
	}
	waitFor(t, func() bool { return strings.Contains(r2.Status().Error, "deadline exceeded") })
	if r2.Status().Held {
		t.Fatal("held while the API hangs")
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, "condition", testutil.Holds(cond))
}
