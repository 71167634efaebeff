package vip

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func TestNormalize(t *testing.T) {
	in := []netip.Prefix{
		netip.MustParsePrefix("2001:db8::10/64"),
		netip.MustParsePrefix("192.0.2.10/24"),
		netip.MustParsePrefix("2001:db8::10/64"),
	}
	got, err := normalize(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")}
	if !slices.Equal(got, want) {
		t.Errorf("normalize(%v) = %v, want %v", in, got, want)
	}
	if !sameAddrs(got, want) || sameAddrs(got, want[:1]) {
		t.Error("sameAddrs disagrees with slices.Equal")
	}
	if got, err := normalize(nil); err != nil || len(got) != 0 {
		t.Errorf("normalize(nil) = %v, %v", got, err)
	}
}

func TestNormalizeRejects(t *testing.T) {
	for _, s := range []string{
		"0.0.0.0/0",
		"127.0.0.1/8",
		"224.0.0.1/4",
		"255.255.255.255/32",
		"169.254.1.1/16",
		"::/0",
		"::1/128",
		"fe80::1/64",
		"ff02::1/16",
		"::ffff:192.0.2.10/120",
	} {
		if _, err := normalize([]netip.Prefix{netip.MustParsePrefix(s)}); !errors.Is(err, ErrInvalidVIP) {
			t.Errorf("normalize(%s): err = %v, want ErrInvalidVIP", s, err)
		}
	}
	if _, err := normalize([]netip.Prefix{{}}); !errors.Is(err, ErrInvalidVIP) {
		t.Errorf("normalize(zero prefix): err = %v, want ErrInvalidVIP", err)
	}
}
