// Package testutil holds what the module's tests share: the one way a test
// waits for a condition (Eventually), so that no test sleeps to wait.
package testutil

import (
	"errors"
	"testing"
	"time"
)

// Eventually calls f every interval until it returns nil. When d has
// passed it fails t with what and f's last error.
func Eventually(t testing.TB, d, interval time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, d, err)
		}
		time.Sleep(interval) // the polling interval, bounded by the deadline
	}
}

// errNotYet is what a boolean condition reports while it does not hold.
var errNotYet = errors.New("condition does not hold yet")

// Holds adapts a boolean condition to Eventually.
func Holds(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}
}
