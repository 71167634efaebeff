package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
)

// replayingBackend is a node still applying the log it had at start.
type replayingBackend struct {
	*fuzzBackend
	replaying bool
}

func (b *replayingBackend) Replaying() bool { return b.replaying }

// A node that may not hold every token yet (state not initialized, or a
// restarted node replaying its log) answers an unknown token with 503
// not_ready and does not count it as a failure; once caught up, an unknown
// token is 401 and repeated failures get 429.
func TestUnknownTokenWhileCatchingUp(t *testing.T) {
	fa := newFuzzAPI(t)
	rb := &replayingBackend{fuzzBackend: fa.b, replaying: true}
	h := httpapi.New(httpapi.Config{Backend: rb, LeaderWait: 100 * time.Millisecond}).Handler()
	get := func(h http.Handler, token string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/v1/peers", nil)
		req.RemoteAddr = "192.0.2.77:40000"
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for i := range 30 {
		if code, body := get(h, "rgadm1.not-yet-known"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not_ready") {
			t.Fatalf("attempt %d while replaying: %d %s", i, code, body)
		}
	}
	if code, body := get(h, fa.token); code != http.StatusOK {
		t.Fatalf("known token while replaying: %d %s", code, body)
	}
	rb.replaying = false
	if code, _ := get(h, "rgadm1.not-yet-known"); code != http.StatusUnauthorized {
		t.Fatalf("unknown token once caught up: %d, want 401", code)
	}
	code := 0
	for range 25 {
		code, _ = get(h, "rgadm1.not-yet-known")
	}
	if code != http.StatusTooManyRequests {
		t.Fatalf("after 25 more failures: %d, want 429", code)
	}

	// A node whose state is not initialized holds no token at all.
	empty := httpapi.New(httpapi.Config{Backend: &fuzzBackend{f: fsm.New(nil)}}).Handler()
	if code, body := get(empty, fa.token); code != http.StatusServiceUnavailable || !strings.Contains(body, "not_ready") {
		t.Fatalf("uninitialized node: %d %s", code, body)
	}
}

// A write that reaches a node after its sender's deadline is not applied;
// before the deadline it is; a malformed deadline is 400.
func TestWriteDeadline(t *testing.T) {
	fa := newFuzzAPI(t)
	post := func(deadline string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/peers", strings.NewReader(`{"name":"late","public_key":"`+fuzzNewPub+`"}`))
		req.Header.Set("Authorization", "Bearer "+fa.token)
		req.Header.Set(httpapi.HeaderDeadline, deadline)
		rec := httptest.NewRecorder()
		fa.h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := post(time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)); code != http.StatusServiceUnavailable || !strings.Contains(body, "deadline_exceeded") {
		t.Fatalf("past deadline: %d %s", code, body)
	}
	if code, body := post("tomorrow"); code != http.StatusBadRequest {
		t.Fatalf("malformed deadline: %d %s", code, body)
	}
	if _, ok := fa.b.f.Peer("late"); ok {
		t.Fatal("a write past its deadline was applied")
	}
	if code, body := post(time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)); code != http.StatusCreated {
		t.Fatalf("future deadline: %d %s", code, body)
	}
}
