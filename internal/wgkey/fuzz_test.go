package wgkey_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"regexp"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// keyErrorRE lists every message a rejected key may produce. Each is a
// fixed template, so none can echo the input, which may be a secret.
var keyErrorRE = regexp.MustCompile(`^invalid input: key (is not valid base64|is \d+ bytes, want 32|is all zeros|is not canonical base64 \(44 characters, no line breaks\))$`)

// publicErrors are the messages wgkey.Public may produce.
var publicErrors = map[string]bool{
	"private key is not 32 bytes of base64": true,
}

// FuzzKey checks the two key parsers, fsm.ParseKey (every key the API and
// the state machine accept) and wgkey.Public (private to public), against
// WireGuard's own parser (wgtypes.ParseKey):
//   - nothing panics;
//   - an accepted key is exactly the canonical base64 of its 32 bytes, so
//     that one key has one spelling (duplicate detection compares strings)
//     and it can be written into a wg-quick config as is;
//   - an accepted key is accepted by WireGuard with the same bytes, and
//     parse(format(k)) == k;
//   - the all-zero key is refused;
//   - a rejected key is rejected the same way every time, with an error
//     that wraps fsm.ErrInvalid and is a fixed message (never the input);
//   - Public accepts exactly what ParseKey accepts plus the all-zero key
//     (a valid private key once clamped), and derives what WireGuard
//     derives.
func FuzzKey(f *testing.F) {
	pair, err := wgkey.Generate()
	if err != nil {
		f.Fatal(err)
	}
	psk, err := wgkey.Preshared()
	if err != nil {
		f.Fatal(err)
	}
	valid := "YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q+URYD3g="
	for _, s := range []string{
		valid,
		pair.Private,
		pair.Public,
		psk,
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", // all zeros
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", // all 0x01
		"//////////////////////////////////////////8=", // all 0xff
		"YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q+URYD3h=", // non-zero padding bits
		"YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q-URYD3g=", // URL-safe alphabet
		"YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q_URYD3g=",
		"YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q+URYD3g",   // no padding
		"YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q+URYD3g==", // extra padding
		" " + valid,
		valid + " ",
		valid + "\n",
		"\t" + valid,
		"YJ6RzHDzhQIqZKXx XX7ol5ZIZeGFcBuQwX7q+URYD3g=",
		"YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q+URYD3g=AAAA", // 35 bytes
		"YJ6RzHDzhQIqZKXxXX7ol5ZIZeGFcBuQwX7q+URY",         // 30 bytes
		"AAAA",
		"",
		"====",
		"\x00",
		"é",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := fsm.ParseKey(s)
		wk, werr := wgtypes.ParseKey(s)
		if err != nil {
			checkRejected(t, s, err)
		} else {
			checkAccepted(t, s, k)
			if werr != nil {
				t.Fatalf("accepted a key WireGuard refuses: %v", werr)
			}
			if !bytes.Equal(wk[:], k[:]) {
				t.Fatal("accepted key decodes differently in WireGuard")
			}
		}

		// Public: same acceptance as ParseKey, except for the all-zero key.
		pub, perr := wgkey.Public(s)
		zero := s == base64.StdEncoding.EncodeToString(make([]byte, fsm.KeyLen))
		if wantOK := err == nil || zero; (perr == nil) != wantOK {
			t.Fatalf("Public error %v, ParseKey error %v", perr, err)
		}
		if perr != nil {
			if !publicErrors[perr.Error()] {
				t.Fatalf("Public: unexpected error message %q", perr)
			}
			return
		}
		if _, err := fsm.ParseKey(pub); err != nil {
			t.Fatalf("Public returned a key ParseKey refuses: %v", err)
		}
		if want := wk.PublicKey().String(); pub != want {
			t.Fatalf("Public = %s, WireGuard derives %s", pub, want)
		}
		if again, _ := wgkey.Public(s); again != pub {
			t.Fatal("Public is not deterministic")
		}
	})
}

func checkAccepted(t *testing.T, s string, k [fsm.KeyLen]byte) {
	t.Helper()
	if k == ([fsm.KeyLen]byte{}) {
		t.Fatal("accepted the all-zero key")
	}
	canon := base64.StdEncoding.EncodeToString(k[:])
	if s != canon {
		t.Fatalf("accepted a non-canonical spelling of a key (%d bytes of text, canonical is %d)", len(s), len(canon))
	}
	k2, err := fsm.ParseKey(canon)
	if err != nil || k2 != k {
		t.Fatalf("parse(format(k)) != k: %v", err)
	}
	if err := fsm.ValidateKey(s); err != nil {
		t.Fatalf("ValidateKey refuses what ParseKey accepts: %v", err)
	}
}

func checkRejected(t *testing.T, s string, err error) {
	t.Helper()
	if !errors.Is(err, fsm.ErrInvalid) {
		t.Fatalf("error does not wrap ErrInvalid: %v", err)
	}
	// A fixed template cannot echo the input.
	msg := err.Error()
	if !keyErrorRE.MatchString(msg) {
		t.Fatalf("unexpected error message %q", msg)
	}
	_, err2 := fsm.ParseKey(s)
	if err2 == nil || err2.Error() != msg {
		t.Fatalf("rejection is not consistent: %v then %v", err, err2)
	}
	if err3 := fsm.ValidateKey(s); err3 == nil || err3.Error() != msg {
		t.Fatalf("ValidateKey disagrees with ParseKey: %v vs %v", err3, err)
	}
}
