// Package hook is the VIP hook mode: the operator's own program, run
// directly (no shell) when this node acquires or releases the VIPs. It is
// the one place in the server that runs a command (SPEC section 5).
package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/raftguard/raftguard/vip"
)

// DefaultTimeout bounds one run of the VIP hook.
const DefaultTimeout = 10 * time.Second

// hookOutputLimit is how much of a hook's output is kept for the log.
const hookOutputLimit = 4096

// ErrFailed is returned (wrapped) when the VIP hook fails, exits non-zero or
// runs past its timeout.
var ErrFailed = errors.New("vip hook failed")

// Hook is the hook mode: the operator's program, run directly (no shell)
// as `PATH acquire|release VIP NODE_ID` once per VIP (the address without
// its prefix length), with a timeout after which its whole process group
// is killed. Its output is logged. It gets a minimal environment: PATH,
// and RAFTGUARD_VIP_ACTION, RAFTGUARD_VIP, RAFTGUARD_VIP_PREFIX (the VIP
// with its prefix length) and RAFTGUARD_NODE_ID; nothing else of the
// server's environment (which may hold tokens) is passed on.
type Hook struct {
	path    string
	nodeID  string
	timeout time.Duration
	log     *slog.Logger

	mu   sync.Mutex // guards held
	held bool       // the last acquire succeeded, and no release ran since
}

var _ vip.Mode = (*Hook)(nil)

// New returns the hook mode running path (an absolute path to an
// executable file) for node nodeID, each run bounded by timeout
// (DefaultTimeout when 0).
func New(path, nodeID string, timeout time.Duration, log *slog.Logger) (*Hook, error) {
	if err := Check(path); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hook{path: path, nodeID: nodeID, timeout: timeout, log: log.With("component", "vip", "vip_mode", "hook")}, nil
}

// Check reports whether path can serve as the VIP hook: an absolute
// path to an executable regular file.
func Check(path string) error {
	if path == "" {
		return fmt.Errorf("%w: the hook mode needs --vip-hook on this node", ErrFailed)
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%w: --vip-hook %q is not an absolute path", ErrFailed, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: --vip-hook: %w", ErrFailed, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: --vip-hook %s is not an executable file", ErrFailed, path)
	}
	return nil
}

// Name is "hook".
func (h *Hook) Name() string { return "hook" }

// Acquire runs the hook with "acquire" for each VIP.
func (h *Hook) Acquire(ctx context.Context, vips []netip.Prefix) (bool, error) {
	h.mu.Lock()
	h.held = false
	h.mu.Unlock()
	for _, v := range vips {
		if err := h.run(ctx, "acquire", v); err != nil {
			return false, err
		}
	}
	h.mu.Lock()
	h.held = true
	h.mu.Unlock()
	return true, nil
}

// Release runs the hook with "release" for each VIP (all of them, even when
// one fails).
func (h *Hook) Release(ctx context.Context, vips []netip.Prefix) (bool, error) {
	h.mu.Lock()
	h.held = false
	h.mu.Unlock()
	var errs []error
	for _, v := range vips {
		errs = append(errs, h.run(ctx, "release", v))
	}
	err := errors.Join(errs...)
	return err == nil, err
}

// Held reports whether the last acquire succeeded with no release since: a
// hook has no way to be asked.
func (h *Hook) Held(context.Context, []netip.Prefix) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held, nil
}

// run runs the hook once.
func (h *Hook) run(ctx context.Context, action string, v netip.Prefix) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.path, action, v.Addr().String(), h.nodeID)
	cmd.Env = []string{
		"PATH=" + cmp(os.Getenv("PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
		"RAFTGUARD_VIP_ACTION=" + action,
		"RAFTGUARD_VIP=" + v.Addr().String(),
		"RAFTGUARD_VIP_PREFIX=" + v.String(),
		"RAFTGUARD_NODE_ID=" + h.nodeID,
	}
	cmd.Dir = "/"
	out := &limitedBuffer{limit: hookOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	setProcessGroup(cmd)
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond).String()
	output := strings.TrimSpace(out.String())
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		h.log.Error("VIP hook timed out: killed its process group", "action", action, "vip", v, "timeout", h.timeout.String(), "output", output)
		return fmt.Errorf("%w: %s %v timed out after %v", ErrFailed, action, v.Addr(), h.timeout)
	case ctx.Err() != nil:
		h.log.Warn("VIP hook cancelled", "action", action, "vip", v, "output", output)
		return fmt.Errorf("%w: %s %v: %w", ErrFailed, action, v.Addr(), ctx.Err())
	case err != nil:
		h.log.Error("VIP hook failed", "action", action, "vip", v, "err", err, "took", took, "output", output)
		return fmt.Errorf("%w: %s %v: %v", ErrFailed, action, v.Addr(), err)
	}
	h.log.Info("VIP hook ran", "action", action, "vip", v, "took", took, "output", output)
	return nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// limitedBuffer keeps the first limit bytes written to it.
type limitedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
	cut   bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room < len(p) {
		b.buf.Write(p[:max(room, 0)])
		b.cut = true
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return b.buf.String() + " [output cut]"
	}
	return b.buf.String()
}
