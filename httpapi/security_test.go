package httpapi_test

// Tests of the rules in fsm as every entry path applies them: a value the
// API refuses is refused by a snapshot restore too, and a refused restore
// leaves every node's state as it was.

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/pki"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// editSnapshot changes the state line (the second) of a snapshot file.
func editSnapshot(t *testing.T, snap []byte, edit func(meta map[string]any)) []byte {
	t.Helper()
	lines := bytes.SplitN(snap, []byte("\n"), 3)
	var meta map[string]any
	if err := json.Unmarshal(lines[1], &meta); err != nil {
		t.Fatal(err)
	}
	edit(meta)
	b, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Concat(lines[0], []byte("\n"), b, []byte("\n"), lines[2])
}

// editPeer changes the first peer line of a snapshot file.
func editPeer(t *testing.T, snap []byte, edit func(p map[string]any)) []byte {
	t.Helper()
	lines := bytes.SplitN(snap, []byte("\n"), 4)
	var p map[string]any
	if err := json.Unmarshal(lines[2], &p); err != nil {
		t.Fatal(err)
	}
	edit(p)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Concat(lines[0], []byte("\n"), lines[1], []byte("\n"), b, []byte("\n"), lines[3])
}

func sub(m map[string]any, k string) map[string]any { return m[k].(map[string]any) }

// TestRestoreRefusesWhatTheAPIRefuses is the probe's injection and its
// relatives: an edited backup restored through the API (through a
// follower and through the leader, with and without force) answers 400 and
// changes no node's state; the client configs stay as they were.
func TestRestoreRefusesWhatTheAPIRefuses(t *testing.T) {
	e := newEnv(t)
	e.create("n1", "a")
	e.create("n2", "b")
	if st, body, _ := e.call("n3", "PATCH", "/v1/peers/b", map[string]any{"allowed_ips": []string{"172.30.0.0/16"}}); st != http.StatusOK {
		t.Fatalf("%d %s", st, body)
	}
	e.converged()
	st, snap, _ := e.cl["n1"].Call("GET", "/v1/cluster/snapshot", nil)
	if st != http.StatusOK {
		t.Fatalf("save: %d", st)
	}
	before := e.converged()
	_, confBefore, _ := e.call("n2", "GET", "/v1/peers/a/config", nil)

	otherKey, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	settings := func(k string, v any) []byte {
		return editSnapshot(t, snap, func(m map[string]any) { sub(m, "settings")[k] = v })
	}
	cluster := func(k string, v any) []byte {
		return editSnapshot(t, snap, func(m map[string]any) { sub(m, "cluster")[k] = v })
	}
	node := func(k string, v any) []byte {
		return editSnapshot(t, snap, func(m map[string]any) { m["nodes"].([]any)[0].(map[string]any)[k] = v })
	}
	cases := map[string][]byte{
		"client_dns injection": settings("client_dns", []string{"1.1.1.1\nPreUp = id > owned"}),
		"endpoint injection":   settings("endpoint", "192.0.2.10:51820\nPostUp = touch owned"),
		"both injections": editSnapshot(t, snap, func(m map[string]any) {
			sub(m, "settings")["client_dns"] = []string{"1.1.1.1\nPreUp = id > owned"}
			sub(m, "settings")["endpoint"] = "192.0.2.10:51820\nPostUp = touch owned"
		}),
		"endpoint without port":          settings("endpoint", "vpn.example.com"),
		"dns with a space":               settings("client_dns", []string{"a b"}),
		"public key of another key":      settings("public_key", otherKey.Public),
		"CA key of another CA":           cluster("ca_key_pem", string(otherCA.KeyPEM)),
		"join token with a newline":      cluster("join_token", "rgjoin1.x\nPostUp = x"),
		"node api_addr with a newline":   node("api_addr", "127.0.0.1:7443\nPostUp = x"),
		"node raft_addr without a port":  node("raft_addr", "127.0.0.1"),
		"token name with a newline":      editSnapshot(t, snap, func(m map[string]any) { m["admin_tokens"].([]any)[0].(map[string]any)["name"] = "x\ny" }),
		"token hash not hex":             editSnapshot(t, snap, func(m map[string]any) { m["admin_tokens"].([]any)[0].(map[string]any)["hash"] = "zz" }),
		"peer route to loopback":         editPeer(t, snap, func(p map[string]any) { p["allowed_ips"] = []string{"127.0.0.0/8"} }),
		"peer route over a VIP":          editPeer(t, snap, func(p map[string]any) { p["allowed_ips"] = []string{"192.0.2.0/24"} }),
		"peer endpoint with a newline":   editPeer(t, snap, func(p map[string]any) { p["endpoint"] = "192.0.2.1:1\nx" }),
		"peer name with a newline":       editPeer(t, snap, func(p map[string]any) { p["name"] = "a\nPostUp = x" }),
		"mtu out of range":               settings("mtu", 70000),
		"another CA, key of this one":    cluster("ca_cert_pem", string(otherCA.CertPEM)),
		"another CA with a foreign cert": replaceCAPair(t, snap, otherCA.CertPEM, []byte(strings.Replace(string(otherCA.KeyPEM), "A", "B", 1))),
	}
	f := e.follower()
	i := 0
	for name, body := range cases {
		for _, q := range []string{"", "?force=true"} {
			via := []string{f, e.leader().NodeID()}[i%2]
			i++
			st, resp, _ := e.call(via, "POST", "/v1/cluster/snapshot/restore"+q, body)
			if st != http.StatusBadRequest || agenttest.ErrorCode(resp) != "invalid_snapshot" {
				t.Errorf("%s%s via %s: %d %s", name, q, via, st, resp)
			}
			if bytes.Contains(resp, []byte("\nPostUp")) || bytes.Contains(resp, []byte("\nPreUp")) {
				t.Errorf("%s: the error echoes a line break: %s", name, resp)
			}
		}
	}
	if d := e.converged(); d != before {
		t.Fatal("a refused restore changed the state")
	}
	for _, id := range nodeIDs {
		st, conf, _ := e.call(id, "GET", "/v1/peers/a/config", nil)
		if st != http.StatusOK || !bytes.Equal(conf, confBefore) || bytes.Contains(conf, []byte("Up =")) {
			t.Fatalf("config on %s after the refused restores: %d\n%s", id, st, conf)
		}
	}
}

// replaceCAPair swaps the CA certificate and key inside a snapshot.
func replaceCAPair(t *testing.T, snap, certPEM, keyPEM []byte) []byte {
	return editSnapshot(t, snap, func(m map[string]any) {
		sub(m, "cluster")["ca_cert_pem"] = string(certPEM)
		sub(m, "cluster")["ca_key_pem"] = string(keyPEM)
	})
}

// TestAllowedIPsRules: a peer's extra routes never capture the cluster's
// own traffic, whichever node the create or update reaches.
func TestAllowedIPsRules(t *testing.T) {
	e := newEnv(t)
	e.create("n1", "p")
	before := e.converged()
	many := make([]string, 0, 300)
	for i := range 300 {
		many = append(many, fmt.Sprintf("172.16.%d.%d/32", i/256, i%256))
	}
	for _, routes := range [][]string{
		{"0.0.0.0/0"}, {"::/0"}, {"127.0.0.0/8"}, {"126.0.0.0/7"}, {"::1/128"}, {"224.0.0.0/4"}, {"ff02::/16"},
		{"169.254.0.0/16"}, {"fe80::/64"}, {"0.0.0.0/8"}, {"192.0.2.0/24"}, {"2001:db8::/64"}, many,
	} {
		for _, id := range nodeIDs {
			st, body, _ := e.call(id, "POST", "/v1/peers", map[string]any{"name": "bad", "public_key": newKey(t), "allowed_ips": routes})
			if st != http.StatusBadRequest && st != http.StatusConflict {
				t.Errorf("create with %.40v via %s: %d %s", routes, id, st, body)
			}
			st, body, _ = e.call(id, "PATCH", "/v1/peers/p", map[string]any{"allowed_ips": routes})
			if st != http.StatusBadRequest && st != http.StatusConflict {
				t.Errorf("update with %.40v via %s: %d %s", routes, id, st, body)
			}
		}
	}
	if d := e.converged(); d != before {
		t.Fatal("a refused write changed the state")
	}
	// Ordinary site-to-site routes still work, in both families.
	if st, body, _ := e.call("n2", "PATCH", "/v1/peers/p", map[string]any{"allowed_ips": []string{"172.31.0.0/16", "2001:db8:5::/48"}}); st != http.StatusOK {
		t.Fatalf("site-to-site routes: %d %s", st, body)
	}
}

// TestAPITLSOnlyAEAD: the API refuses TLS 1.2 CBC suites and accepts TLS
// 1.2 with an AEAD suite and TLS 1.3.
func TestAPITLSOnlyAEAD(t *testing.T) {
	e := newEnv(t)
	addr := e.tc.Nodes["n2"].APIAddr()
	dial := func(cfg *tls.Config) error {
		cfg.InsecureSkipVerify = true //nolint:gosec // probes test the server side
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_GCM_SHA256} {
		if err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}); err == nil { //nolint:gosec // the probe
			t.Errorf("TLS 1.2 with %s accepted", tls.CipherSuiteName(suite))
		}
	}
	for _, suite := range pki.APICipherSuites {
		if err := dial(&tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}); err != nil {
			t.Errorf("TLS 1.2 with %s refused: %v", tls.CipherSuiteName(suite), err)
		}
	}
	if err := dial(&tls.Config{MinVersion: tls.VersionTLS13}); err != nil {
		t.Errorf("TLS 1.3 refused: %v", err)
	}
}

// TestStrictJSONKeys: a key given twice, or in another case than the
// field's, is refused rather than silently resolved.
func TestStrictJSONKeys(t *testing.T) {
	e := newEnv(t)
	key := newKey(t)
	for _, body := range []string{
		`{"name":"a","name":"b"}`,
		`{"name":"a","NAME":"b"}`,
		`{"Name":"a"}`,
		`{"name":"a","public_key":"` + key + `","Public_Key":"` + key + `"}`,
		`{"name":"a","allowed_ips":["172.16.0.0/16"],"allowed_ips":[]}`,
	} {
		for _, id := range nodeIDs {
			st, resp, _ := e.call(id, "POST", "/v1/peers", []byte(body))
			if st != http.StatusBadRequest || agenttest.ErrorCode(resp) != "invalid" {
				t.Errorf("create %s via %s: %d %s", body, id, st, resp)
			}
		}
	}
	e.create("n1", "p")
	before := e.converged()
	for _, body := range []string{`{"enabled":false,"enabled":true}`, `{"Enabled":false}`} {
		for _, id := range nodeIDs {
			if st, resp, _ := e.call(id, "PATCH", "/v1/peers/p", []byte(body)); st != http.StatusBadRequest {
				t.Errorf("update %s via %s: %d %s", body, id, st, resp)
			}
		}
	}
	if d := e.converged(); d != before {
		t.Fatal("a refused request changed the state")
	}
	// Nested objects and arrays are checked too, and ordinary bodies pass.
	if st, resp, _ := e.call("n2", "POST", "/v1/peers", []byte(`{"name":"ok","allowed_ips":["172.16.0.0/16"],"enabled":true}`)); st != http.StatusCreated {
		t.Fatalf("ordinary create: %d %s", st, resp)
	}
}

// TestSettingsChangeRefusesInjection: the settings route applies the same
// rules as bootstrap and restore, through any node.
func TestSettingsChangeRefusesInjection(t *testing.T) {
	e := newEnv(t)
	e.create("n1", "a")
	agenttest.Eventually(t, 15*time.Second, func() error {
		if v := e.leader().State().ClusterVersion(); v < fsm.CommandSince(fsm.CmdUpdateSettings) {
			return fmt.Errorf("cluster version %d", v)
		}
		return nil
	})
	before := e.converged()
	for _, patch := range []map[string]any{
		{"client_dns": []string{"1.1.1.1\nPreUp = id > owned"}},
		{"endpoint": "192.0.2.10:51820\nPostUp = touch owned"},
		{"endpoint": "vpn.example.com"},
		{"client_dns": []string{"a b"}},
	} {
		for _, id := range nodeIDs {
			if st, body, _ := e.call(id, "PATCH", "/v1/cluster/settings", patch); st != http.StatusBadRequest {
				t.Errorf("settings %v via %s: %d %s", patch, id, st, body)
			}
		}
	}
	if d := e.converged(); d != before {
		t.Fatal("a refused settings change changed the state")
	}
}
