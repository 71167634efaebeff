package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File names of a node's identity inside its TLS directory.
const (
	CACertFile   = "ca.crt"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

var (
	// ErrNoIdentity is returned (wrapped) by LoadIdentity when the TLS
	// directory holds no complete identity: the node has not bootstrapped or
	// joined yet.
	ErrNoIdentity = errors.New("pki: no node identity")
	// ErrUntrustedCert is returned when a node certificate does not chain to
	// the cluster CA.
	ErrUntrustedCert = errors.New("pki: certificate not issued by the cluster CA")
)

// Identity is a node's TLS material as kept in the data dir under tls/:
// ca.crt, node.crt and node.key (files 0600, directory 0700).
type Identity struct {
	CACertPEM []byte
	CertPEM   []byte
	KeyPEM    []byte
}

// LoadIdentity reads the identity from the TLS directory dir. When any of the
// three files is absent it returns an error wrapping ErrNoIdentity. The loaded
// identity is validated: the key must match the node certificate and the
// certificate must chain to the CA.
func LoadIdentity(dir string) (*Identity, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load identity: %s missing in %s: %w", name, dir, ErrNoIdentity)
		}
		if err != nil {
			return nil, fmt.Errorf("load identity: %w", err)
		}
		return b, nil
	}
	id := &Identity{}
	var err error
	if id.CACertPEM, err = read(CACertFile); err != nil {
		return nil, err
	}
	if id.CertPEM, err = read(NodeCertFile); err != nil {
		return nil, err
	}
	if id.KeyPEM, err = read(NodeKeyFile); err != nil {
		return nil, err
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	return id, nil
}

// Validate checks that the identity parses, that the key belongs to the node
// certificate and that the node certificate was issued by the CA.
func (id *Identity) Validate() error {
	_, _, _, err := id.parse()
	return err
}

// Save writes the identity into the TLS directory dir, creating it with mode
// 0700 (and tightening an existing one). Each file is written to a temporary
// file with mode 0600, synced and renamed into place, so a crash never leaves
// a half-written file. ca.crt is written last: LoadIdentity reports
// ErrNoIdentity until all three files are present.
func (id *Identity) Save(dir string) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{NodeKeyFile, id.KeyPEM}, {NodeCertFile, id.CertPEM}, {CACertFile, id.CACertPEM}} {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("save identity: %w", err)
		}
	}
	return nil
}

// WriteFileAtomic writes data to path with mode 0600 through a temporary file
// in the same directory that is synced and renamed over path; the directory is
// synced afterwards.
func WriteFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod temp file: %w", err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", filepath.Base(path), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", filepath.Base(path), err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// NodeID returns the node ID, the CN of the node certificate.
func (id *Identity) NodeID() (string, error) {
	cert, err := ParseCertPEM(id.CertPEM)
	if err != nil {
		return "", fmt.Errorf("parse node certificate: %w", err)
	}
	return cert.Subject.CommonName, nil
}

// CAFingerprint returns the fingerprint of the cluster CA certificate.
func (id *Identity) CAFingerprint() (string, error) {
	ca, err := ParseCertPEM(id.CACertPEM)
	if err != nil {
		return "", fmt.Errorf("parse ca certificate: %w", err)
	}
	return Fingerprint(ca), nil
}

// CACert returns the parsed cluster CA certificate.
func (id *Identity) CACert() (*x509.Certificate, error) {
	ca, err := ParseCertPEM(id.CACertPEM)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	return ca, nil
}

// parse returns the CA certificate, the node's TLS key pair (leaf parsed) and
// a pool holding only the CA.
func (id *Identity) parse() (*x509.Certificate, tls.Certificate, *x509.CertPool, error) {
	ca, err := ParseCertPEM(id.CACertPEM)
	if err != nil {
		return nil, tls.Certificate{}, nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	if !ca.IsCA {
		return nil, tls.Certificate{}, nil, fmt.Errorf("ca certificate: %w", ErrNotCA)
	}
	leaf, err := ParseCertPEM(id.CertPEM)
	if err != nil {
		return nil, tls.Certificate{}, nil, fmt.Errorf("parse node certificate: %w", err)
	}
	key, err := ParseKeyPEM(id.KeyPEM)
	if err != nil {
		return nil, tls.Certificate{}, nil, fmt.Errorf("parse node key: %w", err)
	}
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return nil, tls.Certificate{}, nil, fmt.Errorf("node key: %w", ErrKeyMismatch)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	// Only the signature is checked here, not the validity period: a node
	// whose certificate has expired should still start and let its peers'
	// handshake errors say so.
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return nil, tls.Certificate{}, nil, fmt.Errorf("node certificate: %w: %v", ErrUntrustedCert, err)
	}
	tc := tls.Certificate{
		Certificate: [][]byte{leaf.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}
	return ca, tc, pool, nil
}
