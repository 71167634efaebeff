// Package wgkey generates WireGuard keys: Curve25519 private/public key pairs
// and preshared keys, all in WireGuard's base64 form.
package wgkey

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// Pair is a WireGuard key pair in base64.
type Pair struct {
	Private string
	Public  string
}

// Generate returns a fresh key pair.
func Generate() (Pair, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return Pair{}, fmt.Errorf("read random: %w", err)
	}
	// Clamp as WireGuard does.
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		return Pair{}, fmt.Errorf("derive public key: %w", err)
	}
	return Pair{Private: base64.StdEncoding.EncodeToString(k[:]), Public: base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())}, nil
}

// Public derives the public key of a base64 private key. The key must be
// in canonical form (44 characters, no line breaks, zero padding bits), as
// WireGuard writes it.
func Public(private string) (string, error) {
	k, err := base64.StdEncoding.Strict().DecodeString(private)
	if err != nil || len(k) != 32 || base64.StdEncoding.EncodeToString(k) != private {
		return "", fmt.Errorf("private key is not 32 bytes of base64")
	}
	priv, err := ecdh.X25519().NewPrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("derive public key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes()), nil
}

// Preshared returns a fresh preshared key.
func Preshared() (string, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k[:]), nil
}
