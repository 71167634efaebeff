// Package pki owns raftguard's cluster public-key infrastructure: the cluster
// certificate authority, node keys, certificate signing requests and node
// certificates, the TLS configurations nodes use towards each other (mutual
// TLS) and towards API clients, CA pinning for joining nodes, and the join and
// admin tokens.
//
// All keys are ECDSA P-256. Private keys are encoded as PKCS #8 PEM. Nothing in
// this package puts key material or token secrets into an error message.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// Validity periods and clock-skew allowance.
const (
	// CAValidity is how long a new cluster CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// NodeValidity is how long a node certificate is valid (capped at the
	// CA's own expiry).
	NodeValidity = 5 * 365 * 24 * time.Hour
	// clockSkew back-dates NotBefore so that a node whose clock is slightly
	// behind the issuer's accepts a freshly issued certificate.
	clockSkew = time.Hour
)

const (
	pemTypeCert = "CERTIFICATE"
	pemTypeKey  = "PRIVATE KEY"
	pemTypeCSR  = "CERTIFICATE REQUEST"
)

var (
	// ErrBadPEM is returned when PEM input is missing, of the wrong type or
	// cannot be parsed.
	ErrBadPEM = errors.New("pki: malformed PEM data")
	// ErrNotCA is returned by ParseCA when the certificate is not a CA
	// certificate.
	ErrNotCA = errors.New("pki: certificate is not a CA")
	// ErrKeyMismatch is returned when a private key does not belong to the
	// certificate it is paired with.
	ErrKeyMismatch = errors.New("pki: private key does not match certificate")
	// ErrBadCSR is returned by SignNode when the certificate signing request
	// is malformed or its signature does not verify.
	ErrBadCSR = errors.New("pki: invalid certificate signing request")
	// ErrBadNodeID is returned when a node ID is empty or not printable.
	ErrBadNodeID = errors.New("pki: invalid node id")
)

// CA is the cluster certificate authority. Every node holds its certificate;
// the key is only needed where node certificates are signed.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA creates a self-signed ECDSA P-256 CA named name, valid for ten years
// from now (back-dated by an hour for clock skew).
func NewCA(name string, now time.Time) (*CA, error) {
	if name == "" {
		name = "raftguard cluster CA"
	}
	keyPEM, key, err := NewKey()
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"raftguard"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: pemTypeCert, Bytes: der}),
		KeyPEM:  keyPEM,
	}, nil
}

// ParseCA parses a CA certificate and its private key, and checks that the
// certificate is a CA and that the key belongs to it.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, ErrNotCA
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse ca key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("ca: %w", ErrKeyMismatch)
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		CertPEM: slices.Clone(certPEM),
		KeyPEM:  slices.Clone(keyPEM),
	}, nil
}

// Fingerprint returns the lower-case hex SHA-256 of the certificate's DER
// encoding. It is how a join token names the cluster CA.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Fingerprint returns the fingerprint of the CA certificate.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// NewKey generates an ECDSA P-256 private key and returns it both as PKCS #8
// PEM and as a crypto.Signer.
func NewKey() (keyPEM []byte, key crypto.Signer, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeKey, Bytes: der}), k, nil
}

// NewCSR creates a PEM certificate signing request for nodeID signed by key.
func NewCSR(key crypto.Signer, nodeID string) (csrPEM []byte, err error) {
	if err := checkNodeID(nodeID); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: nodeID},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCSR, Bytes: der}), nil
}

// SignNode checks the CSR's signature and issues a node certificate for the
// CSR's public key: CN=nodeID, SANs are ips and dns plus "localhost",
// 127.0.0.1 and ::1, extended key usage server and client authentication,
// valid five years (never past the CA's own expiry), random 128-bit serial.
// The nodeID argument, not the CSR's subject, decides the certificate's CN:
// the caller (the leader admitting a node) is the authority on names.
func (ca *CA) SignNode(csrPEM []byte, nodeID string, ips []net.IP, dns []string, now time.Time) (certPEM []byte, err error) {
	if err := checkNodeID(nodeID); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != pemTypeCSR {
		return nil, fmt.Errorf("decode csr: %w", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse csr: %w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("check csr signature: %w: %v", ErrBadCSR, err)
	}
	if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("csr public key is %T, want ecdsa: %w", csr.PublicKey, ErrBadCSR)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(csr.PublicKey)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(NodeValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	allIPs := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, ip := range ips {
		if ip == nil {
			continue
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		if !slices.ContainsFunc(allIPs, ip.Equal) {
			allIPs = append(allIPs, ip)
		}
	}
	allDNS := []string{"localhost"}
	for _, d := range dns {
		d = strings.ToLower(strings.TrimSpace(d))
		if d != "" && !slices.Contains(allDNS, d) {
			allDNS = append(allDNS, d)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: nodeID, Organization: []string{"raftguard"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IPAddresses:           allIPs,
		DNSNames:              allDNS,
		SubjectKeyId:          ski,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCert, Bytes: der}), nil
}

// ParseCertPEM parses the first certificate in PEM data.
func ParseCertPEM(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != pemTypeCert {
		return nil, ErrBadPEM
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPEM, err)
	}
	return cert, nil
}

// ParseKeyPEM parses a PKCS #8 (or SEC 1 "EC PRIVATE KEY") PEM private key.
// The error never includes key bytes.
func ParseKeyPEM(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, ErrBadPEM
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case pemTypeKey:
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, ErrBadPEM
	}
	if err != nil {
		// The parse error text is generic (it never echoes the input).
		return nil, fmt.Errorf("%w: %v", ErrBadPEM, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key type %T cannot sign", ErrBadPEM, k)
	}
	return s, nil
}

func checkNodeID(id string) error {
	if id == "" || len(id) > 128 {
		return ErrBadNodeID
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f || r > '~' {
			return ErrBadNodeID
		}
	}
	return nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	return serial, nil
}

func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}
