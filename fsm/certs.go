package fsm

import "fmt"

// ValidateFingerprint checks a certificate fingerprint: the hex SHA-256 of
// the certificate's DER encoding, 64 lowercase hex digits.
func ValidateFingerprint(fp string) error {
	if len(fp) != 64 {
		return fmt.Errorf("%w: certificate fingerprint must be 64 hex digits", ErrInvalid)
	}
	for i := 0; i < len(fp); i++ {
		if c := fp[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: certificate fingerprint must be lowercase hex", ErrInvalid)
		}
	}
	return nil
}
