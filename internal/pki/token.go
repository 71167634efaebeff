package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Token prefixes. The version digit lets the format change later.
const (
	JoinTokenPrefix  = "rgjoin1."
	AdminTokenPrefix = "rgadm1."
	// secretBytes is the amount of randomness in every token secret.
	secretBytes = 32
)

// ErrBadToken is returned when a token is malformed. The error never contains
// the token or any part of it.
var ErrBadToken = errors.New("pki: malformed token")

// NewJoinToken returns a join token naming the cluster CA by its fingerprint:
// "rgjoin1." + 64 hex digits + "." + base64url (unpadded) of 32 random bytes.
func NewJoinToken(caFingerprint string) (token string, err error) {
	fp, ok := normalizeFingerprint(caFingerprint)
	if !ok {
		return "", fmt.Errorf("new join token: ca fingerprint is not 64 hex digits: %w", ErrBadToken)
	}
	secret, err := newSecret()
	if err != nil {
		return "", err
	}
	return JoinTokenPrefix + fp + "." + secret, nil
}

// ParseJoinToken splits a join token into the CA fingerprint (lower-case hex)
// and the secret (the base64url text as it appears in the token). Surrounding
// white space is ignored. Errors wrap ErrBadToken and name only what is wrong.
func ParseJoinToken(token string) (caFingerprint, secret string, err error) {
	token = strings.TrimSpace(token)
	rest, ok := strings.CutPrefix(token, JoinTokenPrefix)
	if !ok {
		return "", "", fmt.Errorf("join token must start with %q: %w", JoinTokenPrefix, ErrBadToken)
	}
	fp, secret, ok := strings.Cut(rest, ".")
	if !ok {
		return "", "", fmt.Errorf("join token has no secret part: %w", ErrBadToken)
	}
	if fp, ok = normalizeFingerprint(fp); !ok {
		return "", "", fmt.Errorf("join token ca fingerprint is not 64 hex digits: %w", ErrBadToken)
	}
	if !validSecret(secret) {
		return "", "", fmt.Errorf("join token secret is not 32 bytes of unpadded base64url: %w", ErrBadToken)
	}
	return fp, secret, nil
}

// NewAdminToken returns an admin API token: "rgadm1." + base64url (unpadded)
// of 32 random bytes. Store only HashToken of it.
func NewAdminToken() (string, error) {
	secret, err := newSecret()
	if err != nil {
		return "", err
	}
	return AdminTokenPrefix + secret, nil
}

// ParseAdminToken checks the format of an admin token (surrounding white
// space ignored) and returns it trimmed. Errors wrap ErrBadToken.
func ParseAdminToken(token string) (string, error) {
	token = strings.TrimSpace(token)
	secret, ok := strings.CutPrefix(token, AdminTokenPrefix)
	if !ok {
		return "", fmt.Errorf("admin token must start with %q: %w", AdminTokenPrefix, ErrBadToken)
	}
	if !validSecret(secret) {
		return "", fmt.Errorf("admin token secret is not 32 bytes of unpadded base64url: %w", ErrBadToken)
	}
	return token, nil
}

// HashToken returns the hex SHA-256 of secret; only this hash is stored (in
// the replicated state and on disk). A plain, fast hash is enough here:
// every token carries 256 bits from crypto/rand, so there is no dictionary to
// try and brute force over the hash is infeasible; slow password hashes
// (bcrypt, scrypt, argon2) exist to protect low-entropy human passwords and
// would only add latency to every API request.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// TokenMatches reports whether secret hashes to hash, comparing in constant
// time.
func TokenMatches(hash, secret string) bool {
	got := HashToken(secret)
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(hash)), []byte(got)) == 1
}

func newSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func validSecret(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == secretBytes
}

func normalizeFingerprint(fp string) (string, bool) {
	if len(fp) != 2*sha256.Size {
		return "", false
	}
	fp = strings.ToLower(fp)
	if _, err := hex.DecodeString(fp); err != nil {
		return "", false
	}
	return fp, true
}
