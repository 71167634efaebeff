//go:build unix

package hook

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"
	"github.com/raftguard/raftguard/vip"
	"github.com/raftguard/raftguard/vip/viptest"
)

// writeScript writes an executable shell script into a temporary directory.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var hookVIPs = []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")}

func TestHookSucceeds(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	h, err := New(writeScript(t, `echo "$@ $RAFTGUARD_VIP_PREFIX token=${RAFTGUARD_TOKEN:-none}" >> `+log+"\necho done\n"), "n1", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("RAFTGUARD_TOKEN", "secret-must-not-pass")
	ctx := context.Background()
	if changed, err := h.Acquire(ctx, hookVIPs); err != nil || !changed {
		t.Fatalf("acquire: %v %v", changed, err)
	}
	if held, _ := h.Held(ctx, hookVIPs); !held {
		t.Fatal("not held after a successful acquire")
	}
	if _, err := h.Release(ctx, hookVIPs); err != nil {
		t.Fatal(err)
	}
	if held, _ := h.Held(ctx, hookVIPs); held {
		t.Fatal("held after release")
	}
	b, _ := os.ReadFile(log)
	want := "acquire 192.0.2.10 n1 192.0.2.10/24 token=none\nacquire 2001:db8::10 n1 2001:db8::10/64 token=none\n" +
		"release 192.0.2.10 n1 192.0.2.10/24 token=none\nrelease 2001:db8::10 n1 2001:db8::10/64 token=none\n"
	if string(b) != want {
		t.Fatalf("calls:\n%s\nwant:\n%s", b, want)
	}
}

func TestHookFails(t *testing.T) {
	h, err := New(writeScript(t, "echo cannot reach the API >&2\nexit 3\n"), "n1", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Acquire(context.Background(), hookVIPs[:1])
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("acquire: %v", err)
	}
}

func TestHookHangsIsKilled(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	// The hook starts a child that would outlive it; the whole group dies.
	h, err := New(writeScript(t, "sleep 60 &\necho $! > "+pidFile+"\nwait\n"), "n1", 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = h.Acquire(context.Background(), hookVIPs[:1])
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("acquire: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a hanging hook held the caller for %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the hook's child %d survived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCheck(t *testing.T) {
	noexec := filepath.Join(t.TempDir(), "hook")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	for _, p := range []string{"", "relative/hook", "/nonexistent/hook", noexec, t.TempDir()} {
		if err := Check(p); !errors.Is(err, ErrFailed) {
			t.Errorf("%q accepted: %v", p, err)
		}
	}
}

// A hook that fails a few times is retried with backoff until it succeeds;
// the failures show in the status meanwhile; Claim never waits for it.
func TestRunnerRetriesFailingHook(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	// Fails on the first two runs, succeeds from the third.
	script := writeScript(t, `n=$(cat `+count+` 2>/dev/null || echo 0); n=$((n+1)); echo $n > `+count+`
[ "$1" = release ] && exit 0
[ $n -ge 3 ] || { echo "attempt $n fails"; exit 1; }
`)
	h, err := New(script, "n1", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	loc := &viptest.Local{}
	r := vip.NewRunner(vip.RunnerConfig{Local: loc, Mode: h, Backoff: vip.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}})
	defer r.Close(time.Second)
	start := time.Now()
	if changed, err := r.Claim(hookVIPs[:1]); err != nil || !changed {
		t.Fatalf("claim: %v %v", changed, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Claim waited for the hook: %v", d)
	}
	waitUntil(t, "a failure in the status", func() bool { st := r.Status(); return st.Failures > 0 && strings.Contains(st.Error, "exit status 1") })
	if held, _ := r.Held(hookVIPs[:1]); held {
		t.Fatal("held while the hook fails")
	}
	waitUntil(t, "the hook to succeed", func() bool { return r.Status().Held })
	if st := r.Status(); st.Error != "" || st.Failures != 0 || st.Mode != "hook" {
		t.Fatalf("status after success: %+v", st)
	}
	if held, _ := r.Held(hookVIPs[:1]); !held {
		t.Fatal("not held")
	}
	// Release: local address at once, the hook's release in the background.
	if _, err := r.Release(hookVIPs[:1]); err != nil {
		t.Fatal(err)
	}
	if held, _ := loc.Held(nil); held {
		t.Fatal("local address kept after Release")
	}
	waitUntil(t, "the release hook", func() bool { b, _ := os.ReadFile(count); return strings.TrimSpace(string(b)) == "4" })
}

// Release cancels an acquire that hangs, and runs the release hook.
func TestRunnerReleaseCancelsHangingAcquire(t *testing.T) {
	dir := t.TempDir()
	released, started := filepath.Join(dir, "released"), filepath.Join(dir, "started")
	script := writeScript(t, `[ "$1" = release ] && { touch `+released+`; exit 0; }
touch `+started+`
exec sleep 60
`)
	h, err := New(script, "n1", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := vip.NewRunner(vip.RunnerConfig{Local: &viptest.Local{}, Mode: h})
	r.Claim(hookVIPs[:1])
	waitUntil(t, "the acquire hook to start", func() bool { _, err := os.Stat(started); return err == nil })
	start := time.Now()
	r.Release(hookVIPs[:1])
	r.Close(5 * time.Second)
	if _, err := os.Stat(released); err != nil {
		t.Fatalf("release hook did not run: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("release waited %v for the hanging acquire", d)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, what, testutil.Holds(cond))
}
