package httpapi_test

// Fuzz tests of the peer write routes' request decoding and validation,
// through the whole handler (authentication, body limit, strict JSON
// decoding, checks, the state machine) with a one-node backend whose
// state is reset for every input.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	pathpkg "path"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/hashicorp/raft"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/pki"
)

// fuzzMaxBody is the body limit of the fuzzed server: small, so that the
// fuzzer reaches it.
const fuzzMaxBody = 2048

// fuzzBackend is a single node that leads and applies commands directly.
type fuzzBackend struct {
	f   *fsm.FSM
	idx uint64
}

func (b *fuzzBackend) NodeID() string      { return "n1" }
func (b *fuzzBackend) State() *fsm.FSM     { return b.f }
func (b *fuzzBackend) IsLeader() bool      { return true }
func (b *fuzzBackend) LeaderID() string    { return "n1" }
func (b *fuzzBackend) VerifyLeader() error { return nil }
func (b *fuzzBackend) Status() httpapi.NodeStatus {
	return httpapi.NodeStatus{NodeID: "n1", Role: "leader"}
}
func (b *fuzzBackend) NodeStatusAt(context.Context, string) (httpapi.NodeStatus, error) {
	return httpapi.NodeStatus{}, errors.New("no other nodes")
}
func (b *fuzzBackend) Servers() ([]httpapi.Member, error)      { return nil, nil }
func (b *fuzzBackend) AddVoter(string, string) error           { return nil }
func (b *fuzzBackend) RemoveServer(string) error               { return nil }
func (b *fuzzBackend) PeerStats() map[string]httpapi.PeerStats { return nil }
func (b *fuzzBackend) LeaderChanges() uint64                   { return 1 }
func (b *fuzzBackend) RestoreSnapshot(io.Reader, int64) error  { return nil }
func (b *fuzzBackend) TransferLeadership(context.Context, string) (string, error) {
	return "n1", nil
}

func (b *fuzzBackend) Apply(t fsm.CommandType, body any) (any, error) {
	data, err := fsm.Encode(t, body)
	if err != nil {
		return nil, err
	}
	b.idx++
	res := b.f.Apply(&raft.Log{Index: b.idx, Type: raft.LogCommand, Data: data})
	if err, ok := res.(error); ok {
		return nil, err
	}
	return res, nil
}

// fuzzAPI is the server under test and the state every input starts from.
type fuzzAPI struct {
	b     *fuzzBackend
	h     http.Handler
	token string
	base  []byte // snapshot of the starting state
	// secrets must never appear in an answer: the stored peers'
	// preshared keys and the server's private key.
	secrets []string
}

// Keys of the starting state (fixed, so that runs are reproducible).
var (
	fuzzServerPriv = seqKeyB64(0xa1)
	fuzzServerPub  = seqKeyB64(0xa2)
	fuzzAlicePub   = seqKeyB64(0xb1)
	fuzzAlicePSK   = seqKeyB64(0xb2)
	fuzzBobPub     = seqKeyB64(0xc1)
	fuzzBobPSK     = seqKeyB64(0xc2)
	fuzzNewPub     = seqKeyB64(0xd1)
	fuzzNewPSK     = seqKeyB64(0xd2)
)

// seqKeyB64 is a fixed, valid, non-zero key.
func seqKeyB64(i byte) string {
	var k [32]byte
	for j := range k {
		k[j] = i ^ byte(j*7)
	}
	return base64.StdEncoding.EncodeToString(k[:])
}

func newFuzzAPI(tb testing.TB) *fuzzAPI {
	tb.Helper()
	tok, err := pki.NewAdminToken()
	if err != nil {
		tb.Fatal(err)
	}
	b := &fuzzBackend{f: fsm.New(nil)}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	must := func(t fsm.CommandType, body any) {
		if _, err := b.Apply(t, body); err != nil {
			tb.Fatalf("%s: %v", t, err)
		}
	}
	must(fsm.CmdInit, fsm.Init{
		Settings: fsm.Settings{
			PrivateKey: fuzzServerPriv, PublicKey: fuzzServerPub, ListenPort: 51820,
			Pool: netip.MustParsePrefix("10.99.0.0/24"), Pool6: netip.MustParsePrefix("fd00:99::/64"),
			VIPs:     []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")},
			Endpoint: "192.0.2.10:51820", MTU: 1420, Keepalive: 25,
			ClientAllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
		},
		CACertPEM: "ca", CAKeyPEM: "key", JoinToken: "join",
		AdminToken: fsm.AdminToken{ID: "admin", Hash: pki.HashToken(tok)},
		At:         at,
	})
	must(fsm.CmdAddPeer, fsm.AddPeer{Name: "alice", PublicKey: fuzzAlicePub, PresharedKey: fuzzAlicePSK, Enabled: true, At: at,
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/32"), netip.MustParsePrefix("fd00:99::2/128")}})
	must(fsm.CmdAddPeer, fsm.AddPeer{Name: "bob", PublicKey: fuzzBobPub, PresharedKey: fuzzBobPSK, Enabled: false, At: at,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	var snap bytes.Buffer
	if err := b.f.WriteSnapshot(&snap); err != nil {
		tb.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Backend: b, MaxBody: fuzzMaxBody, LeaderWait: 100 * time.Millisecond})
	tb.Cleanup(api.Close)
	return &fuzzAPI{b: b, h: api.Handler(), token: tok, base: snap.Bytes(),
		secrets: []string{fuzzServerPriv, fuzzAlicePSK, fuzzBobPSK}}
}

// reset restores the starting state.
func (a *fuzzAPI) reset(t *testing.T) {
	t.Helper()
	a.b.f = fsm.New(nil)
	if err := a.b.f.Restore(io.NopCloser(bytes.NewReader(a.base))); err != nil {
		t.Fatal(err)
	}
	a.b.idx = 100
}

func (a *fuzzAPI) snapshot(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := a.b.f.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// peers encodes every stored peer (the state without the applied index).
func (a *fuzzAPI) peers(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(a.b.f.Peers())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (a *fuzzAPI) call(t *testing.T, method, path string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, req)
	return w
}

// checkAnswer checks what every answer must satisfy and returns the error
// message of an error answer ("" otherwise).
func (a *fuzzAPI) checkAnswer(t *testing.T, w *httptest.ResponseRecorder, reqBody []byte, allowed ...int) string {
	t.Helper()
	if !slices.Contains(allowed, w.Code) {
		t.Fatalf("status %d, want one of %v: %s", w.Code, allowed, w.Body.Bytes())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	body := w.Body.String()
	for _, s := range a.secrets {
		// A secret the request itself holds may come back in the one
		// client config of a create.
		if strings.Contains(body, s) && !bytes.Contains(reqBody, []byte(s)) {
			t.Fatalf("a stored secret appears in the answer (status %d)", w.Code)
		}
	}
	if w.Code < 400 {
		return ""
	}
	var eb httpapi.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("status %d with a malformed error body %q: %v", w.Code, body, err)
	}
	if w.Code == http.StatusBadRequest && eb.Error.Code != "invalid" {
		t.Fatalf("400 with code %q", eb.Error.Code)
	}
	return eb.Error.Message
}

// looseBody is what a lenient reading of a body finds: candidate secrets
// (the well-formed keys in the key fields) and the strings an error
// message may legitimately echo (field names, the name, addresses,
// routes).
type looseBody struct {
	object     bool // the body is one JSON object
	unknown    bool // it has a field the request type does not know
	candidates []string
	echoable   []string
}

func readLoose(body []byte, known ...string) looseBody {
	var lb looseBody
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		// Not an object: any valid key anywhere in the body is a
		// candidate secret.
		for i := 0; i+44 <= len(body); i++ {
			if s := string(body[i : i+44]); fsm.ValidateKey(s) == nil {
				lb.candidates = append(lb.candidates, s)
			}
		}
		return lb
	}
	lb.object = true
	for k, raw := range m {
		lb.echoable = append(lb.echoable, k)
		field := ""
		for _, kn := range known {
			if jsonFold(k) == jsonFold(kn) {
				field = kn
			}
		}
		switch field {
		case "":
			lb.unknown = true
		case "public_key", "preshared_key":
			// Only well-formed keys count: a key always ends in '=',
			// so it cannot come back inside the JSON decoder's
			// message about a number given for a string field.
			var s string
			if json.Unmarshal(raw, &s) == nil && fsm.ValidateKey(s) == nil {
				lb.candidates = append(lb.candidates, s)
			}
		default:
			var s string
			var list []string
			if json.Unmarshal(raw, &s) == nil {
				lb.echoable = append(lb.echoable, s)
			} else if json.Unmarshal(raw, &list) == nil {
				lb.echoable = append(lb.echoable, list...)
			}
		}
	}
	return lb
}

// jsonFold folds a field name the way encoding/json matches names to
// struct fields, case-insensitively: every rune becomes the smallest rune
// of its Unicode simple case folding orbit.
func jsonFold(s string) string {
	return strings.Map(func(r rune) rune {
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				return r2
			}
			r = r2
		}
	}, s)
}

// checkNoEcho fails when msg holds a candidate secret that it could not
// have taken from a field an error may echo.
func checkNoEcho(t *testing.T, msg string, lb looseBody, extraEchoable ...string) {
	t.Helper()
	echoable := append(slices.Clone(lb.echoable), extraEchoable...)
	for _, c := range lb.candidates {
		if !strings.Contains(msg, c) {
			continue
		}
		if slices.ContainsFunc(echoable, func(e string) bool { return strings.Contains(e, c) }) {
			continue
		}
		t.Fatalf("error message echoes a key from the request: %q", msg)
	}
}

// checkStoredPeer: a stored peer re-validates field by field.
func checkStoredPeer(t *testing.T, p fsm.Peer) {
	t.Helper()
	if err := fsm.ValidateName(p.Name); err != nil {
		t.Fatalf("stored peer name: %v", err)
	}
	if err := fsm.ValidateKey(p.PublicKey); err != nil {
		t.Fatalf("stored public key: %v", err)
	}
	if p.PresharedKey != "" {
		if err := fsm.ValidateKey(p.PresharedKey); err != nil {
			t.Fatalf("stored preshared key: %v", err)
		}
	}
	for _, a := range p.Addresses {
		if back, err := fsm.ParseHostAddress(a.String()); err != nil || back != a {
			t.Fatalf("stored address %v does not re-validate: %v", a, err)
		}
	}
	for _, r := range p.AllowedIPs {
		if back, err := fsm.ParsePrefix(r.String()); err != nil || back != r {
			t.Fatalf("stored allowed IP %v does not re-validate: %v", r, err)
		}
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

var createFields = []string{"name", "public_key", "preshared_key", "addresses", "allowed_ips", "enabled"}

// FuzzCreatePeer posts arbitrary bodies to POST /v1/peers:
//   - no panic, no 5xx; the status is one the API documents, 413 exactly
//     when the body is over the limit, and 400 for a body that is not one
//     JSON object or has an unknown field;
//   - a rejected request changes nothing, and its error message never
//     holds a key from the request nor a stored secret;
//   - an accepted request stored what it asked for, the stored peer
//     re-validates, the answer shows it without its preshared key, and
//     sending the stored peer back as a create is an idempotent 200.
func FuzzCreatePeer(f *testing.F) {
	for _, s := range []string{
		`{"name":"carol"}`,
		`{"name":"carol","public_key":"` + fuzzNewPub + `"}`,
		`{"name":"carol","public_key":"` + fuzzNewPub + `","preshared_key":"` + fuzzNewPSK + `","addresses":["10.99.0.9","fd00:99::9/128"],"allowed_ips":["203.0.113.0/24","2001:db8:1::/48"],"enabled":false}`,
		`{"name":"carol","preshared_key":""}`,
		`{"name":"carol","preshared_key":"` + fuzzNewPSK + `"}`,
		`{"name":"alice","public_key":"` + fuzzAlicePub + `"}`,
		`{"name":"carol","public_key":"` + fuzzAlicePub + `"}`,
		`{"name":"carol","public_key":"` + fuzzServerPub + `"}`,
		`{"name":"carol","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"name":"carol","preshared_key":"` + fuzzNewPSK[:40] + `"}`,
		`{"name":"carol","preshared_key":"` + fuzzNewPSK + "\\n" + `"}`,
		`{"name":"carol","addresses":["10.99.0.2"]}`,
		`{"name":"carol","addresses":["10.99.0.1/32"]}`,
		`{"name":"carol","addresses":["10.99.0.0/24"]}`,
		`{"name":"carol","addresses":["10.98.0.5"]}`,
		`{"name":"carol","addresses":["10.99.0.5","10.99.0.6"]}`,
		`{"name":"carol","addresses":["fe80::1%eth0"]}`,
		`{"name":"carol","allowed_ips":["198.51.100.128/25"]}`,
		`{"name":"carol","allowed_ips":["203.0.113.1/24"]}`,
		`{"name":"carol","allowed_ips":["::ffff:203.0.113.0/120"]}`,
		`{"name":"carol","allowed_ips":["0.0.0.0/0"]}`,
		`{"name":"carol","private_key":"` + fuzzNewPSK + `"}`,
		`{"name":"carol","preshared_key":5}`,
		`{"name":"ca/rol"}`,
		`{"name":"` + strings.Repeat("c", 65) + `"}`,
		`{"name":"carol"} {"name":"dave"}`,
		`{"name":"carol"}]`,
		`{"NAME":"carol","Enabled":true}`,
		"{\"name\":\"carol\",\"publ\u0131c_key\":\"" + fuzzNewPub + "\"}", // dotless i: not a case of i, so an unknown field
		"{\"name\":\"carol\",\"public_\u212aey\":\"" + fuzzNewPub + "\"}", // Kelvin sign: a case of k, so public_key
		`null`, `[]`, `""`, `{}`, ``, ` `, `{`,
		`{"name":"carol","addresses":null,"allowed_ips":[]}`,
		`{"name":"` + strings.Repeat("x", fuzzMaxBody) + `"}`,
	} {
		f.Add([]byte(s))
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		api.reset(t)
		before := api.snapshot(t)
		w := api.call(t, http.MethodPost, "/v1/peers", body)
		msg := api.checkAnswer(t, w, body, http.StatusOK, http.StatusCreated, http.StatusBadRequest,
			http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
		if (w.Code == http.StatusRequestEntityTooLarge) != (len(body) > fuzzMaxBody) {
			t.Fatalf("status %d for a body of %d bytes (limit %d)", w.Code, len(body), fuzzMaxBody)
		}
		lb := readLoose(body, createFields...)
		if w.Code >= 400 {
			if !bytes.Equal(before, api.snapshot(t)) {
				t.Fatalf("rejected create (%d) changed the state", w.Code)
			}
			checkNoEcho(t, msg, lb)
			return
		}
		if !lb.object || lb.unknown {
			t.Fatalf("status %d for a body that is not one object of known fields: %q", w.Code, body)
		}
		var req httpapi.CreatePeerRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("accepted body does not decode: %v", err)
		}
		var resp httpapi.CreatePeerResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer: %v", err)
		}
		p, ok := api.b.f.Peer(req.Name)
		if !ok {
			t.Fatalf("status %d but no peer %q", w.Code, req.Name)
		}
		checkStoredPeer(t, p)
		if resp.Name != p.Name || resp.PublicKey != p.PublicKey || resp.Enabled != p.Enabled ||
			resp.HasPresharedKey != (p.PresharedKey != "") ||
			!slices.Equal(resp.Addresses, p.Addresses) || !slices.Equal(resp.AllowedIPs, nonNil(p.AllowedIPs)) {
			t.Fatalf("answer %+v does not show the stored peer %+v", resp.PeerView, p)
		}
		if req.PublicKey != nil && p.PublicKey != *req.PublicKey {
			t.Fatal("stored public key differs from the requested one")
		}
		if w.Code == http.StatusCreated {
			checkCreated(t, req, p)
		}
		if req.PublicKey != nil && p.PresharedKey != "" && strings.Contains(w.Body.String(), p.PresharedKey) {
			t.Fatal("answer holds the preshared key")
		}
		// The stored peer, sent back, re-validates: a retried create.
		again, err := json.Marshal(httpapi.CreatePeerRequest{
			Name: p.Name, PublicKey: &p.PublicKey, PresharedKey: &p.PresharedKey,
			Addresses: prefixStrings(p.Addresses), AllowedIPs: prefixStrings(p.AllowedIPs), Enabled: &p.Enabled,
		})
		if err != nil {
			t.Fatal(err)
		}
		mid := api.peers(t)
		if w2 := api.call(t, http.MethodPost, "/v1/peers", again); w2.Code != http.StatusOK {
			t.Fatalf("stored peer sent back as a create: %d %s", w2.Code, w2.Body.Bytes())
		}
		if !bytes.Equal(mid, api.peers(t)) {
			t.Fatal("idempotent create changed the peers")
		}
	})
}

// checkCreated: a new peer holds what the request asked for.
func checkCreated(t *testing.T, req httpapi.CreatePeerRequest, p fsm.Peer) {
	t.Helper()
	if want := req.Enabled == nil || *req.Enabled; p.Enabled != want {
		t.Fatalf("enabled %v, want %v", p.Enabled, want)
	}
	if req.PresharedKey != nil && p.PresharedKey != *req.PresharedKey {
		t.Fatal("stored preshared key differs from the requested one")
	}
	if len(req.Addresses) > 0 {
		var want []netip.Prefix
		for _, a := range req.Addresses {
			pa, err := fsm.ParseHostAddress(a)
			if err != nil {
				t.Fatalf("accepted address %q: %v", a, err)
			}
			want = append(want, pa)
		}
		if !slices.Equal(want, p.Addresses) {
			t.Fatalf("addresses %v, want %v", p.Addresses, want)
		}
	} else if len(p.Addresses) != 2 {
		t.Fatalf("allocated addresses %v, want one per pool", p.Addresses)
	}
	var want []netip.Prefix
	for _, r := range req.AllowedIPs {
		pr, err := fsm.ParsePrefix(r)
		if err != nil {
			t.Fatalf("accepted allowed IP %q: %v", r, err)
		}
		want = append(want, pr)
	}
	if !slices.Equal(want, p.AllowedIPs) {
		t.Fatalf("allowed IPs %v, want %v", p.AllowedIPs, want)
	}
}

func nonNil(ps []netip.Prefix) []netip.Prefix {
	if ps == nil {
		return []netip.Prefix{}
	}
	return ps
}

var updateFields = []string{"enabled", "allowed_ips", "preshared_key"}

// FuzzUpdatePeer sends arbitrary names and bodies to PATCH
// /v1/peers/{name}, with the properties of FuzzCreatePeer: documented
// statuses only, 413 exactly over the limit, 400 for anything but one
// object of known fields, nothing changed and no key echoed on a
// rejection; an accepted update stored what it asked for, the stored peer
// re-validates, the answer never holds the preshared key, and the stored
// values sent back are accepted again.
func FuzzUpdatePeer(f *testing.F) {
	for _, s := range []struct{ name, body string }{
		{"alice", `{"enabled":false}`},
		{"bob", `{"enabled":true,"allowed_ips":[]}`},
		{"alice", `{"allowed_ips":["203.0.113.0/24","2001:db8:1::/48"]}`},
		{"alice", `{"allowed_ips":["198.51.100.0/25"]}`},
		{"bob", `{"allowed_ips":["198.51.100.0/25"]}`},
		{"alice", `{"allowed_ips":["10.99.0.0/25"]}`},
		{"alice", `{"allowed_ips":["203.0.113.0/24","203.0.113.0/25"]}`},
		{"alice", `{"allowed_ips":["203.0.113.1/24"]}`},
		{"alice", `{"allowed_ips":null}`},
		{"alice", `{"preshared_key":""}`},
		{"alice", `{"preshared_key":"` + fuzzNewPSK + `"}`},
		{"alice", `{"preshared_key":"` + fuzzNewPSK[:43] + `"}`},
		{"alice", `{"preshared_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`},
		{"alice", `{"preshared_key":"` + strings.ReplaceAll(fuzzNewPSK, "+", "-") + `"}`},
		{"alice", `{"public_key":"` + fuzzNewPub + `"}`},
		{"alice", `{"name":"eve"}`},
		{"alice", `{"enabled":"yes"}`},
		{"alice", `{}`},
		{"alice", `null`},
		{"alice", `{"enabled":true}}`},
		{"alice", ``},
		{"nobody", `{"enabled":true}`},
		{"a/b", `{"enabled":true}`},
		{"", `{"enabled":true}`},
		{"al ice", `{"enabled":true}`},
		{fuzzNewPSK, `{"enabled":true}`},
	} {
		f.Add(s.name, []byte(s.body))
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		api.reset(t)
		before := api.snapshot(t)
		path := "/v1/peers/" + url.PathEscape(name)
		if _, err := url.ParseRequestURI(path); err != nil || pathpkg.Clean(path) != path {
			return // not a request a client can send, or one the router redirects
		}
		old, existed := api.b.f.Peer(name)
		w := api.call(t, http.MethodPatch, path, body)
		msg := api.checkAnswer(t, w, body, http.StatusOK, http.StatusBadRequest, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusConflict, http.StatusRequestEntityTooLarge)
		if w.Code == http.StatusRequestEntityTooLarge && len(body) <= fuzzMaxBody {
			t.Fatalf("413 for a body of %d bytes (limit %d)", len(body), fuzzMaxBody)
		}
		lb := readLoose(body, updateFields...)
		if w.Code >= 400 {
			if !bytes.Equal(before, api.snapshot(t)) {
				t.Fatalf("rejected update (%d) changed the state", w.Code)
			}
			checkNoEcho(t, msg, lb, name)
			return
		}
		if !existed {
			t.Fatalf("status %d for the unknown peer %q", w.Code, name)
		}
		if len(body) > fuzzMaxBody || !lb.object || lb.unknown {
			t.Fatalf("status %d for a body that is not one object of known fields under the limit: %q", w.Code, body)
		}
		var req httpapi.UpdatePeerRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("accepted body does not decode: %v", err)
		}
		p, ok := api.b.f.Peer(name)
		if !ok {
			t.Fatalf("peer %q vanished", name)
		}
		checkStoredPeer(t, p)
		if p.PresharedKey != "" && strings.Contains(w.Body.String(), p.PresharedKey) {
			t.Fatal("answer holds the preshared key")
		}
		if p.PublicKey != old.PublicKey || !slices.Equal(p.Addresses, old.Addresses) {
			t.Fatal("an update changed the key or the addresses")
		}
		want := old.Enabled
		if req.Enabled != nil {
			want = *req.Enabled
		}
		if p.Enabled != want {
			t.Fatalf("enabled %v, want %v", p.Enabled, want)
		}
		if req.PresharedKey != nil && p.PresharedKey != *req.PresharedKey {
			t.Fatal("stored preshared key differs from the requested one")
		}
		if req.PresharedKey == nil && p.PresharedKey != old.PresharedKey {
			t.Fatal("preshared key changed without being asked")
		}
		if req.AllowedIPs != nil {
			var want []netip.Prefix
			for _, r := range *req.AllowedIPs {
				pr, err := fsm.ParsePrefix(r)
				if err != nil {
					t.Fatalf("accepted allowed IP %q: %v", r, err)
				}
				want = append(want, pr)
			}
			if !slices.Equal(want, p.AllowedIPs) {
				t.Fatalf("allowed IPs %v, want %v", p.AllowedIPs, want)
			}
		}
		var view httpapi.PeerView
		if err := json.Unmarshal(w.Body.Bytes(), &view); err != nil || view.Name != p.Name ||
			view.Enabled != p.Enabled || !slices.Equal(view.AllowedIPs, nonNil(p.AllowedIPs)) {
			t.Fatalf("answer %s does not show the stored peer: %v", w.Body.Bytes(), err)
		}
		// The stored values, sent back, are accepted again.
		routes := prefixStrings(p.AllowedIPs)
		again, err := json.Marshal(httpapi.UpdatePeerRequest{Enabled: &p.Enabled, AllowedIPs: &routes, PresharedKey: &p.PresharedKey})
		if err != nil {
			t.Fatal(err)
		}
		if w2 := api.call(t, http.MethodPatch, path, again); w2.Code != http.StatusOK {
			t.Fatalf("stored values sent back: %d %s", w2.Code, w2.Body.Bytes())
		}
		if p2, _ := api.b.f.Peer(name); p2.PresharedKey != p.PresharedKey || p2.Enabled != p.Enabled || !slices.Equal(p2.AllowedIPs, p.AllowedIPs) {
			t.Fatal("sending the stored values back changed the peer")
		}
	})
}
