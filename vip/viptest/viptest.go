// Package viptest has test doubles for the vip package's interfaces.
package viptest

import (
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"
	"github.com/raftguard/raftguard/vip"
)

// Local stands for the lease-bounded local address (vip.Local) in tests of
// a Mode run by a vip.Runner: it records what is claimed.
type Local struct {
	mu   sync.Mutex
	held []netip.Prefix
}

var _ vip.Local = (*Local)(nil)

// Claim records vips as held; it reports whether that changed anything.
func (l *Local) Claim(vips []netip.Prefix) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := !slices.Equal(l.held, vips)
	l.held = slices.Clone(vips)
	return changed, nil
}

// Release forgets what was held; it reports whether anything was.
func (l *Local) Release([]netip.Prefix) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := l.held != nil
	l.held = nil
	return changed, nil
}

// Held reports whether vips (or, with nil, anything) are held.
func (l *Local) Held(vips []netip.Prefix) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held) > 0 && (vips == nil || slices.Equal(l.held, vips)), nil
}

// Renew reports whether vips are held, like Held.
func (l *Local) Renew(vips []netip.Prefix) (bool, error) { return l.Held(vips) }

// WaitHeld polls the Runner until its mode holds the VIPs (failing the test
// after 10 seconds) and returns the distinct errors its status showed
// meanwhile, in order.
func WaitHeld(t *testing.T, r *vip.Runner) []string {
	t.Helper()
	var errs []string
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, "the mode holds the VIPs", testutil.Holds(func() bool {
		st := r.Status()
		if st.Error != "" && !slices.Contains(errs, st.Error) {
			errs = append(errs, st.Error)
		}
		return st.Held
	}))
	return errs
}

// Faults is what a fake provider API answers wrongly, by request key: the
// statuses to answer first, in order (Fail), and the requests that hang
// until the client gives up (Slow). The fake guards both maps with its own
// mutex; Close frees the hanging requests.
type Faults struct {
	Fail    map[string][]int
	Slow    map[string]bool
	release chan struct{}
}

// NewFaults returns Faults with nothing injected.
func NewFaults() *Faults {
	return &Faults{Fail: map[string][]int{}, Slow: map[string]bool{}, release: make(chan struct{})}
}

// Next takes the status to answer to a request with key (0: none injected)
// and reports whether it hangs. Call it with the fake's mutex held.
func (f *Faults) Next(key string) (status int, slow bool) {
	if q := f.Fail[key]; len(q) > 0 {
		status, f.Fail[key] = q[0], q[1:]
	}
	return status, f.Slow[key]
}

// Hang blocks until the request ends or Close.
func (f *Faults) Hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-f.release:
	}
}

// Close frees the hanging requests.
func (f *Faults) Close() { close(f.release) }
