package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func mustCA(t *testing.T, name string) *CA {
	t.Helper()
	ca, err := NewCA(name, time.Now())
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// mustIdentity issues a node identity from ca.
func mustIdentity(t *testing.T, ca *CA, nodeID string) *Identity {
	t.Helper()
	keyPEM, key, err := NewKey()
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	csr, err := NewCSR(key, nodeID)
	if err != nil {
		t.Fatalf("NewCSR: %v", err)
	}
	certPEM, err := ca.SignNode(csr, nodeID, nil, nil, time.Now())
	if err != nil {
		t.Fatalf("SignNode: %v", err)
	}
	return &Identity{CACertPEM: ca.CertPEM, CertPEM: certPEM, KeyPEM: keyPEM}
}

func TestCARoundTrip(t *testing.T) {
	ca, err := NewCA("test CA", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.Subject.CommonName != "test CA" {
		t.Fatalf("bad CA cert: IsCA=%v CN=%q", ca.Cert.IsCA, ca.Cert.Subject.CommonName)
	}
	if got, want := ca.Cert.NotAfter, testNow.Add(CAValidity); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if ca.Cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm = %v, want ECDSA", ca.Cert.PublicKeyAlgorithm)
	}
	if b, _ := pem.Decode(ca.KeyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM is not PKCS#8")
	}
	fp := ca.Fingerprint()
	if len(fp) != 64 || strings.ToLower(fp) != fp {
		t.Fatalf("fingerprint %q is not lower-case 64-hex", fp)
	}

	back, err := ParseCA(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatalf("ParseCA: %v", err)
	}
	if back.Fingerprint() != fp {
		t.Errorf("fingerprint changed in round trip")
	}
	// The parsed CA can sign, and its certificates verify against the original.
	id := mustIdentity(t, back, "n1")
	if err := id.Validate(); err != nil {
		t.Fatalf("identity from parsed CA: %v", err)
	}

	other := mustCA(t, "other")
	if _, err := ParseCA(ca.CertPEM, other.KeyPEM); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("ParseCA with foreign key: err = %v, want ErrKeyMismatch", err)
	}
	if _, err := ParseCA(id.CertPEM, id.KeyPEM); !errors.Is(err, ErrNotCA) {
		t.Errorf("ParseCA with node cert: err = %v, want ErrNotCA", err)
	}
	if _, err := ParseCA([]byte("junk"), ca.KeyPEM); !errors.Is(err, ErrBadPEM) {
		t.Errorf("ParseCA junk cert: err = %v, want ErrBadPEM", err)
	}
	if _, err := ParseCA(ca.CertPEM, []byte("junk")); !errors.Is(err, ErrBadPEM) {
		t.Errorf("ParseCA junk key: err = %v, want ErrBadPEM", err)
	}
}

func TestSignNode(t *testing.T) {
	ca := mustCA(t, "ca")
	_, key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, "csr-name")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	certPEM, err := ca.SignNode(csr, "node-1", []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("127.0.0.1")}, []string{"n1.example", "localhost"}, now)
	if err != nil {
		t.Fatalf("SignNode: %v", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "node-1" {
		t.Errorf("CN = %q, want node-1 (the argument, not the CSR subject)", cert.Subject.CommonName)
	}
	if cert.IsCA {
		t.Error("node cert must not be a CA")
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	slices.Sort(ips)
	if want := []string{"127.0.0.1", "192.0.2.7", "::1"}; !slices.Equal(ips, want) {
		t.Errorf("IP SANs = %v, want %v", ips, want)
	}
	dns := slices.Sorted(slices.Values(cert.DNSNames))
	if want := []string{"localhost", "n1.example"}; !slices.Equal(dns, want) {
		t.Errorf("DNS SANs = %v, want %v", dns, want)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("ExtKeyUsage = %v, want server+client auth", cert.ExtKeyUsage)
	}
	if got, want := cert.NotAfter, now.Add(NodeValidity).Truncate(time.Second); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "n1.example"}); err != nil {
		t.Errorf("verify against CA: %v", err)
	}
	// Serial numbers are random.
	certPEM2, err := ca.SignNode(csr, "node-1", nil, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	cert2, _ := ParseCertPEM(certPEM2)
	if cert.SerialNumber.Cmp(cert2.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestSignNodeRejectsBadCSR(t *testing.T) {
	ca := mustCA(t, "ca")
	_, key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, err := NewCSR(key, "n1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	der := slices.Clone(block.Bytes)
	// The signature is the last element of the DER: flipping bits in its
	// tail keeps the structure parseable but breaks the signature.
	der[len(der)-3] ^= 0xff
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if _, err := x509.ParseCertificateRequest(der); err != nil {
		t.Fatalf("tampered CSR should still parse: %v", err)
	}
	if _, err := ca.SignNode(bad, "n1", nil, nil, time.Now()); !errors.Is(err, ErrBadCSR) {
		t.Fatalf("SignNode(tampered) err = %v, want ErrBadCSR", err)
	}
	if _, err := ca.SignNode([]byte("not a csr"), "n1", nil, nil, time.Now()); !errors.Is(err, ErrBadCSR) {
		t.Fatalf("SignNode(junk) err = %v, want ErrBadCSR", err)
	}
	if _, err := ca.SignNode(csrPEM, "", nil, nil, time.Now()); !errors.Is(err, ErrBadNodeID) {
		t.Fatalf("SignNode(empty id) err = %v, want ErrBadNodeID", err)
	}
	if _, err := ca.SignNode(csrPEM, "a b", nil, nil, time.Now()); !errors.Is(err, ErrBadNodeID) {
		t.Fatalf("SignNode(id with space) err = %v, want ErrBadNodeID", err)
	}
}

// handshake runs a TLS handshake over an in-memory pipe. After a successful
// server handshake the server writes one byte which the client reads, so a
// rejection the server sends after the client's side of the handshake is
// complete (TLS 1.3 client certificates) still reaches the client.
func handshake(t *testing.T, server, client *tls.Config) (sc, cc tls.ConnectionState, serverErr, clientErr error) {
	t.Helper()
	c1, c2 := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	_ = c1.SetDeadline(deadline)
	_ = c2.SetDeadline(deadline)
	srv := tls.Server(c1, server)
	cli := tls.Client(c2, client)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c1.Close() // not srv.Close: close_notify would block on the unbuffered pipe
		if serverErr = srv.Handshake(); serverErr != nil {
			return
		}
		sc = srv.ConnectionState()
		_, serverErr = srv.Write([]byte{1})
	}()
	clientErr = cli.Handshake()
	if clientErr == nil {
		cc = cli.ConnectionState()
		_, clientErr = io.ReadFull(cli, make([]byte, 1))
	}
	c2.Close()
	<-done
	return sc, cc, serverErr, clientErr
}

func peerConfigs(t *testing.T, id *Identity) (server, client *tls.Config) {
	t.Helper()
	s, err := id.PeerServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := id.PeerClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestPeerTLS(t *testing.T) {
	ca := mustCA(t, "cluster")
	foreign := mustCA(t, "foreign")
	aSrv, _ := peerConfigs(t, mustIdentity(t, ca, "a"))
	_, bCli := peerConfigs(t, mustIdentity(t, ca, "b"))
	xSrv, xCli := peerConfigs(t, mustIdentity(t, foreign, "x"))

	if aSrv.MinVersion != tls.VersionTLS13 || bCli.MinVersion != tls.VersionTLS13 {
		t.Fatalf("peer configs must require TLS 1.3")
	}

	t.Run("same CA", func(t *testing.T) {
		sc, cc, serr, cerr := handshake(t, aSrv, bCli)
		if serr != nil || cerr != nil {
			t.Fatalf("handshake: server %v, client %v", serr, cerr)
		}
		if got := sc.PeerCertificates[0].Subject.CommonName; got != "b" {
			t.Errorf("server saw client %q, want b", got)
		}
		if got := cc.PeerCertificates[0].Subject.CommonName; got != "a" {
			t.Errorf("client saw server %q, want a", got)
		}
	})
	t.Run("client from foreign CA", func(t *testing.T) {
		_, _, serr, cerr := handshake(t, aSrv, xCli)
		if serr == nil || cerr == nil {
			t.Fatalf("want both sides to fail: server %v, client %v", serr, cerr)
		}
	})
	t.Run("server from foreign CA", func(t *testing.T) {
		_, _, serr, cerr := handshake(t, xSrv, bCli)
		if !errors.Is(cerr, ErrUntrustedPeer) {
			t.Fatalf("client err = %v, want ErrUntrustedPeer", cerr)
		}
		if serr == nil {
			t.Fatalf("server handshake should fail too")
		}
	})
	t.Run("client without certificate", func(t *testing.T) {
		noCert := bCli.Clone()
		noCert.Certificates = nil
		_, _, serr, cerr := handshake(t, aSrv, noCert)
		if serr == nil || cerr == nil {
			t.Fatalf("want both sides to fail: server %v, client %v", serr, cerr)
		}
	})
}

func TestPinnedClientConfig(t *testing.T) {
	ca := mustCA(t, "cluster")
	foreign := mustCA(t, "foreign")
	id := mustIdentity(t, ca, "a")
	api, err := id.APIServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(api.Certificates[0].Certificate); n != 2 {
		t.Fatalf("API chain has %d certificates, want leaf+CA", n)
	}

	t.Run("right fingerprint", func(t *testing.T) {
		_, _, serr, cerr := handshake(t, api, PinnedClientConfig(ca.Fingerprint()))
		if serr != nil || cerr != nil {
			t.Fatalf("handshake: server %v, client %v", serr, cerr)
		}
		// Upper case works too.
		_, _, serr, cerr = handshake(t, api, PinnedClientConfig(strings.ToUpper(ca.Fingerprint())))
		if serr != nil || cerr != nil {
			t.Fatalf("upper-case fingerprint: server %v, client %v", serr, cerr)
		}
	})
	t.Run("wrong fingerprint", func(t *testing.T) {
		_, _, _, cerr := handshake(t, api, PinnedClientConfig(foreign.Fingerprint()))
		if !errors.Is(cerr, ErrCAMismatch) {
			t.Fatalf("client err = %v, want ErrCAMismatch", cerr)
		}
		if !strings.Contains(cerr.Error(), "does not match the join token") {
			t.Errorf("error does not say plainly what is wrong: %v", cerr)
		}
	})
	t.Run("genuine CA in chain but leaf from another CA", func(t *testing.T) {
		// An impostor who copies the public CA certificate into its
		// chain but cannot sign with the CA key.
		impostor := mustIdentity(t, foreign, "evil")
		cfg, err := impostor.APIServerConfig()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates[0].Certificate = [][]byte{cfg.Certificates[0].Certificate[0], ca.Cert.Raw}
		_, _, _, cerr := handshake(t, cfg, PinnedClientConfig(ca.Fingerprint()))
		if !errors.Is(cerr, ErrCAMismatch) {
			t.Fatalf("client err = %v, want ErrCAMismatch", cerr)
		}
	})
	t.Run("api server accepts peer client certs and none", func(t *testing.T) {
		_, bCli := peerConfigs(t, mustIdentity(t, ca, "b"))
		sc, _, serr, cerr := handshake(t, api, bCli)
		if serr != nil || cerr != nil {
			t.Fatalf("handshake: server %v, client %v", serr, cerr)
		}
		if len(sc.VerifiedChains) == 0 {
			t.Errorf("client certificate was not verified")
		}
		_, xCli := peerConfigs(t, mustIdentity(t, foreign, "x"))
		_, _, serr, _ = handshake(t, api, xCli)
		if serr == nil {
			t.Errorf("API server accepted a foreign client certificate")
		}
	})
	t.Run("CAClientConfig", func(t *testing.T) {
		cfg, err := CAClientConfig(ca.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, serr, cerr := handshake(t, api, cfg); serr != nil || cerr != nil {
			t.Fatalf("handshake: server %v, client %v", serr, cerr)
		}
		cfg, err = CAClientConfig(foreign.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, cerr := handshake(t, api, cfg); !errors.Is(cerr, ErrUntrustedPeer) {
			t.Fatalf("client err = %v, want ErrUntrustedPeer", cerr)
		}
	})
}

func TestTokens(t *testing.T) {
	ca := mustCA(t, "ca")
	fp := ca.Fingerprint()
	tok, err := NewJoinToken(fp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "rgjoin1."+fp+".") || strings.Contains(tok, "=") {
		t.Fatalf("bad token format (length %d)", len(tok))
	}
	gotFP, secret, err := ParseJoinToken(tok)
	if err != nil {
		t.Fatalf("ParseJoinToken: %v", err)
	}
	if gotFP != fp || tok != "rgjoin1."+fp+"."+secret || len(secret) != 43 {
		t.Fatalf("round trip mismatch")
	}
	if _, s2, _ := ParseJoinToken(" " + tok + "\n"); s2 != secret {
		t.Errorf("surrounding white space not ignored")
	}
	tok2, _ := NewJoinToken(fp)
	if tok2 == tok {
		t.Errorf("two join tokens are equal")
	}
	if _, err := NewJoinToken("abc"); !errors.Is(err, ErrBadToken) {
		t.Errorf("NewJoinToken(bad fp) err = %v", err)
	}

	bad := []string{
		"",
		"rgjoin1.",
		"rgjoin2." + fp + "." + secret,
		"rgjoin1." + fp,
		"rgjoin1." + fp + ".",
		"rgjoin1." + fp[:63] + "." + secret,
		"rgjoin1." + fp + "0." + secret,
		"rgjoin1." + strings.Repeat("g", 64) + "." + secret,
		"rgjoin1." + fp + "." + secret[:42],
		"rgjoin1." + fp + "." + secret + "A",
		"rgjoin1." + fp + "." + secret + "=",
		"rgjoin1." + fp + "." + strings.Repeat("+", 43),
		"rgjoin1." + fp + "." + secret + ".x",
		"rgadm1." + secret,
	}
	for _, b := range bad {
		_, _, err := ParseJoinToken(b)
		if !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseJoinToken(%q) err = %v, want ErrBadToken", b, err)
			continue
		}
		if len(secret) > 0 && strings.Contains(err.Error(), secret[:10]) {
			t.Errorf("error text leaks the token: %v", err)
		}
	}

	adm, err := NewAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(adm, "rgadm1.") || len(adm) != len("rgadm1.")+43 {
		t.Fatalf("bad admin token format")
	}
	if got, err := ParseAdminToken(adm + " "); err != nil || got != adm {
		t.Fatalf("ParseAdminToken: %v", err)
	}
	for _, b := range []string{"", "rgadm1.", "rgadm1.abc", tok, "rgadm1." + secret + "x"} {
		if _, err := ParseAdminToken(b); !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseAdminToken(%q) err = %v", b, err)
		}
	}

	h := HashToken(secret)
	if len(h) != 64 {
		t.Fatalf("hash length %d", len(h))
	}
	if !TokenMatches(h, secret) || !TokenMatches(strings.ToUpper(h), secret) {
		t.Error("TokenMatches rejects the right secret")
	}
	if TokenMatches(h, secret[:42]+"B") || TokenMatches("", secret) || TokenMatches(h, "") {
		t.Error("TokenMatches accepts a wrong secret")
	}
}

func TestIdentitySaveLoad(t *testing.T) {
	ca := mustCA(t, "ca")
	id := mustIdentity(t, ca, "node-7")
	dir := filepath.Join(t.TempDir(), "tls")

	if _, err := LoadIdentity(dir); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("LoadIdentity(missing) err = %v, want ErrNoIdentity", err)
	}
	// A pre-existing, too open directory is tightened.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := id.Save(dir); err != nil {
		t.Fatalf("Save: %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", st.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if want := []string{"ca.crt", "node.crt", "node.key"}; !slices.Equal(names, want) {
		t.Errorf("files = %v, want %v (no temp files left)", names, want)
	}
	// Saving again over existing files keeps the modes.
	if err := id.Save(dir); err != nil {
		t.Fatalf("second Save: %v", err)
	}

	back, err := LoadIdentity(dir)
	if err != nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	if string(back.CertPEM) != string(id.CertPEM) || string(back.KeyPEM) != string(id.KeyPEM) || string(back.CACertPEM) != string(id.CACertPEM) {
		t.Fatal("identity changed in round trip")
	}
	if nid, err := back.NodeID(); err != nil || nid != "node-7" {
		t.Errorf("NodeID = %q, %v", nid, err)
	}
	if fp, err := back.CAFingerprint(); err != nil || fp != ca.Fingerprint() {
		t.Errorf("CAFingerprint = %q, %v", fp, err)
	}

	// A partial identity is no identity.
	if err := os.Remove(filepath.Join(dir, CACertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(dir); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("LoadIdentity(partial) err = %v, want ErrNoIdentity", err)
	}

	// A certificate from another CA does not make a valid identity.
	other := mustIdentity(t, mustCA(t, "other"), "node-7")
	mixed := &Identity{CACertPEM: ca.CertPEM, CertPEM: other.CertPEM, KeyPEM: other.KeyPEM}
	if err := mixed.Save(dir); !errors.Is(err, ErrUntrustedCert) {
		t.Fatalf("Save(mixed) err = %v, want ErrUntrustedCert", err)
	}
	wrongKey := &Identity{CACertPEM: ca.CertPEM, CertPEM: id.CertPEM, KeyPEM: other.KeyPEM}
	if err := wrongKey.Validate(); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("Validate(wrong key) err = %v, want ErrKeyMismatch", err)
	}
	if err := wrongKey.Validate(); err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("error mentions key material: %v", err)
	}
}
