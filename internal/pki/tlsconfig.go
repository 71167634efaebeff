package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrCAMismatch is returned (wrapped, from the TLS handshake) by a
	// connection made with PinnedClientConfig when the server does not
	// present the CA named by the join token, or its certificate was not
	// issued by that CA.
	ErrCAMismatch = errors.New("the server's CA does not match the join token")
	// ErrUntrustedPeer is returned (wrapped, from the TLS handshake) when the
	// other side presents no certificate or one not issued by the cluster CA.
	ErrUntrustedPeer = errors.New("pki: peer certificate not issued by the cluster CA")
)

// PeerServerConfig returns the server side of mutual TLS between nodes (Raft
// and forwarded API calls): it presents the node certificate and requires a
// client certificate issued by the cluster CA (and by nothing else). TLS 1.3
// only.
func (id *Identity) PeerServerConfig() (*tls.Config, error) {
	_, cert, pool, err := id.parse()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

// PeerClientConfig returns the client side of mutual TLS between nodes: it
// presents the node certificate and accepts a server whose certificate chains
// to the cluster CA. There is no host name check: any certificate the cluster
// CA issued belongs to a member, whatever address it was reached at. TLS 1.3
// only.
func (id *Identity) PeerClientConfig() (*tls.Config, error) {
	_, cert, pool, err := id.parse()
	if err != nil {
		return nil, err
	}
	return verifyingClient(tls.VersionTLS13, []tls.Certificate{cert}, verifyChain(pool, x509.ExtKeyUsageServerAuth)), nil
}

// APIServerConfig returns the HTTPS configuration of the API. The server
// presents its node certificate followed by the CA certificate, so that a
// joining node holding only a token can pin the CA by fingerprint. A client
// certificate is optional; when one is given it must be issued by the
// cluster CA (forwarded calls from other nodes carry one). TLS 1.3, or TLS
// 1.2 with the AEAD suites of APICipherSuites only.
func (id *Identity) APIServerConfig() (*tls.Config, error) {
	ca, cert, pool, err := id.parse()
	if err != nil {
		return nil, err
	}
	cert.Certificate = append(cert.Certificate, ca.Raw)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: APICipherSuites,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}, nil
}

// CAClientConfig returns a client configuration without a client certificate
// that accepts a server whose certificate chains to the CA in caPEM, without a
// host name check (node certificates name the node, not the address a client
// happens to use). It suits the command line client given --ca.
func CAClientConfig(caPEM []byte) (*tls.Config, error) {
	ca, err := ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return verifyingClient(tls.VersionTLS12, nil, verifyChain(pool, x509.ExtKeyUsageServerAuth)), nil
}

// verifyingClient is every client configuration of this package: TLS from
// minVersion (TLS 1.2 with APICipherSuites only), presenting certs, and
// verifying the server with verify instead of Go's default, which would
// also check a host name (node certificates name the node, not the address
// a caller happens to use).
func verifyingClient(minVersion uint16, certs []tls.Certificate, verify func(tls.ConnectionState) error) *tls.Config {
	c := &tls.Config{
		MinVersion:         minVersion,
		Certificates:       certs,
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection:   verify,
	}
	if minVersion < tls.VersionTLS13 {
		c.CipherSuites = APICipherSuites
	}
	return c
}

// verifyChain returns a VerifyConnection callback that verifies the peer's
// chain against roots for the given usage.
func verifyChain(roots *x509.CertPool, usage x509.ExtKeyUsage) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("no certificate presented: %w", ErrUntrustedPeer)
		}
		if err := verifyLeaf(cs.PeerCertificates, roots, usage, nil); err != nil {
			return fmt.Errorf("%w: %v", ErrUntrustedPeer, err)
		}
		return nil
	}
}

// verifyLeaf verifies chain[0] against roots, with the rest of the chain
// but root as intermediates.
func verifyLeaf(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage, root *x509.Certificate) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != root {
			inter.AddCert(c)
		}
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// PinnedClientConfig returns the client configuration of a node that joins
// with only a token. It presents no client certificate. It accepts the server
// only if the presented chain contains a CA certificate whose Fingerprint
// equals fp and the leaf verifies against that certificate as the only root.
// Otherwise the handshake fails with an error wrapping ErrCAMismatch.
func PinnedClientConfig(fp string) *tls.Config {
	fp = strings.ToLower(strings.TrimSpace(fp))
	return verifyingClient(tls.VersionTLS12, nil, func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: the server presented no certificate", ErrCAMismatch)
		}
		var pinned *x509.Certificate
		for _, c := range cs.PeerCertificates {
			if Fingerprint(c) == fp {
				pinned = c
				break
			}
		}
		if pinned == nil {
			got := "none"
			if n := len(cs.PeerCertificates); n > 1 {
				got = Fingerprint(cs.PeerCertificates[n-1])
			}
			return fmt.Errorf("%w (token expects CA %s, server presented CA %s)", ErrCAMismatch, fp, got)
		}
		if !pinned.IsCA {
			return fmt.Errorf("%w: the certificate with fingerprint %s is not a CA", ErrCAMismatch, fp)
		}
		roots := x509.NewCertPool()
		roots.AddCert(pinned)
		if err := verifyLeaf(cs.PeerCertificates, roots, x509.ExtKeyUsageServerAuth, pinned); err != nil {
			return fmt.Errorf("%w: server certificate does not verify against CA %s: %v", ErrCAMismatch, fp, err)
		}
		return nil
	})
}

// APICipherSuites are the TLS 1.2 suites the API accepts: ECDHE key
// exchange (forward secrecy) with an AEAD cipher, nothing else. CBC suites
// (with their SHA-1 MACs and padding-oracle history) and static RSA key
// exchange are refused. TLS 1.3 suites are not configurable and all AEAD.
// TLS 1.2 stays because some API clients (monitoring agents, older
// OpenSSL and Java builds) do not speak TLS 1.3; node-to-node traffic uses
// TLS 1.3 only.
var APICipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
}
