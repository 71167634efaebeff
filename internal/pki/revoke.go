package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// ErrRevokedCert is returned (wrapped, from the TLS handshake) when the other
// side presents a node certificate the cluster has revoked: its node was
// removed from the cluster, or was issued a new certificate.
var ErrRevokedCert = errors.New("pki: node certificate revoked (its node was removed from the cluster or holds a newer certificate)")

// RevokedFunc reports whether the certificate with this fingerprint (see
// Fingerprint) is revoked. It is called on every handshake and must be
// cheap and safe for concurrent use.
type RevokedFunc func(fingerprint string) bool

// RefuseRevoked returns a copy of cfg whose handshakes also fail, with an
// error wrapping ErrRevokedCert, when the other side's leaf certificate is
// revoked. The check runs after cfg's own verification (chain to the cluster
// CA), so it applies to certificates that are otherwise valid. A side that
// presents no certificate (allowed by VerifyClientCertIfGiven) is left to
// cfg's rules.
func RefuseRevoked(cfg *tls.Config, revoked RevokedFunc) *tls.Config {
	c := cfg.Clone()
	verify := cfg.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if verify != nil {
			if err := verify(cs); err != nil {
				return err
			}
		}
		return CheckRevoked(cs.PeerCertificates, revoked)
	}
	return c
}

// CheckRevoked returns an error wrapping ErrRevokedCert when the leaf of
// chain (the first certificate) is revoked. The error names the
// certificate's node and fingerprint, never key material.
func CheckRevoked(chain []*x509.Certificate, revoked RevokedFunc) error {
	if len(chain) == 0 || revoked == nil {
		return nil
	}
	fp := Fingerprint(chain[0])
	if !revoked(fp) {
		return nil
	}
	return fmt.Errorf("%w: node %q, certificate %s", ErrRevokedCert, chain[0].Subject.CommonName, fp[:16])
}

// Certificate returns the parsed node certificate.
func (id *Identity) Certificate() (*x509.Certificate, error) {
	cert, err := ParseCertPEM(id.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("parse node certificate: %w", err)
	}
	return cert, nil
}
