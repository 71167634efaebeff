package testutil

import (
	"errors"
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, time.Second, time.Millisecond, "third call", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("%d calls", n)
	}
	ok := false
	Eventually(t, time.Second, time.Millisecond, "flag", Holds(func() bool { ok = !ok; return !ok }))
}
