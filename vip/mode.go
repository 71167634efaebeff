package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// A Mode is how the network delivers the VIPs to this node: one
// implementation per VIP mode (the L2 announcements of ModeARP, the hook,
// BGP, the cloud providers). Its methods are idempotent; Acquire and
// Release report whether they changed anything. The context bounds the
// call.
type Mode interface {
	// Name is the mode's name, as in the cluster setting.
	Name() string
	// Acquire makes the network deliver vips to this node.
	Acquire(ctx context.Context, vips []netip.Prefix) (changed bool, err error)
	// Release stops the network delivering vips to this node.
	Release(ctx context.Context, vips []netip.Prefix) (changed bool, err error)
	// Held reports whether the network delivers vips to this node now, as
	// far as the mode can tell.
	Held(ctx context.Context, vips []netip.Prefix) (bool, error)
}

// ModeStatus is what a Runner reports about its mode.
type ModeStatus struct {
	Mode string
	// Held: the last Acquire succeeded (and a later check confirmed it),
	// and nothing was released since.
	Held bool
	// Error is the last failure, empty after a success.
	Error string
	// Failures counts consecutive failed attempts; NextAttempt is when the
	// next one runs (zero when none is due).
	Failures    int
	NextAttempt time.Time
}

// Backoff bounds a Runner's retries: the first waits Min, each next one
// twice as long, at most Max, with up to a fifth added at random.
type Backoff struct{ Min, Max time.Duration }

// DefaultBackoff is the retry schedule of a failed Acquire or Release.
var DefaultBackoff = Backoff{Min: time.Second, Max: 30 * time.Second}

func (b Backoff) after(failures int) time.Duration {
	d := b.Min
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// Local is the lease-bounded local address a Runner keeps: a *Manager.
type Local interface {
	Claim(vips []netip.Prefix) (bool, error)
	Release(vips []netip.Prefix) (bool, error)
	Held(vips []netip.Prefix) (bool, error)
	Renew(vips []netip.Prefix) (bool, error)
}

var _ Local = (*Manager)(nil)

// A Runner drives one Mode for the reconcile loop. The local address (with
// its kernel-lifetime lease: Local) is claimed, renewed and released at
// once, in the caller's goroutine: that is the fencing, and it must not
// wait for anything. The mode's own Acquire and Release run in a goroutine
// of the Runner, retried with backoff until they succeed or the wish
// changes, so that a slow hook or cloud API never stalls the loop (which
// would stop the lease renewals) and a failing one never makes the node
// hand over leadership. Release cancels an Acquire still running.
type Runner struct {
	local   Local
	mode    Mode
	log     *slog.Logger
	backoff Backoff
	// OpTimeout bounds one Acquire, Release or Held call of the mode.
	opTimeout time.Duration
	// Recheck is how often a held mode is asked whether it still holds.
	recheck time.Duration
	// onReleased is called after the mode's Release succeeded.
	onReleased func()
	onHeld     func()

	mu       sync.Mutex // guards want, acquire, acquired, cancelOp, st, closing
	want     []netip.Prefix
	acquire  bool               // the wish: acquire want (true) or release it
	acquired bool               // an Acquire was attempted since the last successful Release
	cancelOp context.CancelFunc // cancels the running Acquire; nil when none runs
	st       ModeStatus
	closing  bool

	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

// RunnerConfig configures NewRunner.
type RunnerConfig struct {
	Local Local
	Mode  Mode
	Log   *slog.Logger
	// Backoff defaults to DefaultBackoff, OpTimeout to 30s, Recheck to 30s.
	Backoff   Backoff
	OpTimeout time.Duration
	Recheck   time.Duration
	// OnReleased, if set, is called (in the Runner's goroutine) each time
	// the mode's Release has succeeded.
	OnReleased func()
	// OnHeld, if set, is called (in the Runner's goroutine) each time the
	// mode comes to hold the VIPs (an Acquire succeeded after they were not
	// held): from then on the network delivers them to this node.
	OnHeld func()
}

// NewRunner starts a Runner; Close stops it.
func NewRunner(c RunnerConfig) *Runner {
	if c.Backoff.Min <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 30 * time.Second
	}
	if c.Recheck <= 0 {
		c.Recheck = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{
		local: c.Local, mode: c.Mode, backoff: c.Backoff, opTimeout: c.OpTimeout, recheck: c.Recheck, onReleased: c.OnReleased, onHeld: c.OnHeld,
		log:  c.Log.With("component", "vip", "vip_mode", c.Mode.Name()),
		kick: make(chan struct{}, 1), stop: cancel, done: make(chan struct{}),
		st: ModeStatus{Mode: c.Mode.Name()},
	}
	go r.run(ctx)
	return r
}

// Mode is the name of the Runner's mode.
func (r *Runner) Mode() string { return r.mode.Name() }

// Status reports the mode's state.
func (r *Runner) Status() ModeStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// Claim claims the local addresses (with their lease) and asks the mode to
// acquire vips; it reports whether the local addresses changed. The mode's
// own failures do not make it fail: they are retried and reported by
// Status.
func (r *Runner) Claim(vips []netip.Prefix) (bool, error) {
	changed, err := r.local.Claim(vips)
	if err != nil {
		return changed, err
	}
	r.mu.Lock()
	if !r.acquire || !slices.Equal(r.want, vips) {
		r.want, r.acquire = slices.Clone(vips), true
		r.st.Held, r.st.Failures, r.st.NextAttempt = false, 0, time.Time{}
		r.poke()
	}
	r.mu.Unlock()
	return changed, nil
}

// Release releases the local addresses at once, then asks the mode to
// release vips (cancelling an Acquire still running).
func (r *Runner) Release(vips []netip.Prefix) (bool, error) {
	changed, err := r.local.Release(vips)
	r.mu.Lock()
	if r.acquire || !slices.Equal(r.want, vips) {
		r.want, r.acquire = slices.Clone(vips), false
		r.st.Held, r.st.Failures, r.st.NextAttempt = false, 0, time.Time{}
		if r.cancelOp != nil {
			r.cancelOp()
		}
		r.poke()
	}
	r.mu.Unlock()
	return changed, err
}

// Held reports whether the local addresses are held and the mode holds
// vips.
func (r *Runner) Held(vips []netip.Prefix) (bool, error) {
	ok, err := r.local.Held(vips)
	if err != nil || !ok {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acquire && r.st.Held && slices.Equal(r.want, vips), nil
}

// Renew renews the local addresses' lease.
func (r *Runner) Renew(vips []netip.Prefix) (bool, error) { return r.local.Renew(vips) }

// Close waits, at most timeout, for a pending Release of the mode to
// finish, then stops the Runner. It releases nothing itself.
func (r *Runner) Close(timeout time.Duration) {
	r.mu.Lock()
	r.closing = true
	pending := !r.acquire && r.acquired
	r.poke()
	r.mu.Unlock()
	if pending {
		t := time.NewTimer(timeout)
		defer t.Stop()
		for {
			r.mu.Lock()
			pending = r.acquired
			r.mu.Unlock()
			if !pending {
				break
			}
			select {
			case <-t.C:
				r.log.Warn("stopping before the VIP mode's release finished")
				pending = false
			case <-time.After(20 * time.Millisecond):
			}
			if !pending {
				break
			}
		}
	}
	r.stop()
	<-r.done
}

// poke wakes the goroutine. r.mu must be held.
func (r *Runner) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Runner) run(ctx context.Context) {
	defer close(r.done)
	var next time.Time // when to look again without a kick; zero: not before a kick
	for {
		var (
			timer <-chan time.Time
			t     *time.Timer
		)
		if !next.IsZero() {
			t = time.NewTimer(time.Until(next))
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-r.kick:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		var released, nowHeld bool
		next, released, nowHeld = r.step(ctx)
		if released && r.onReleased != nil {
			r.onReleased()
		}
		if nowHeld && r.onHeld != nil {
			r.onHeld()
		}
	}
}

// step does what the wish asks, once, and returns when to look again,
// whether it released the mode and whether the mode came to hold the VIPs.
func (r *Runner) step(ctx context.Context) (time.Time, bool, bool) {
	r.mu.Lock()
	want, acquire, acquired, st := slices.Clone(r.want), r.acquire, r.acquired, r.st
	if !st.NextAttempt.IsZero() && time.Now().Before(st.NextAttempt) {
		r.mu.Unlock()
		return st.NextAttempt, false, false // a kick before the backoff ran out
	}
	if len(want) == 0 || (!acquire && !acquired) {
		r.mu.Unlock()
		return time.Time{}, false, false
	}
	opCtx, cancel := context.WithTimeout(ctx, r.opTimeout)
	defer cancel()
	if acquire {
		r.acquired = true
		r.cancelOp = cancel
	}
	r.mu.Unlock()

	var (
		changed bool
		err     error
		what    = "acquire"
	)
	switch {
	case acquire && st.Held:
		// Held: check that it still is, now and then.
		what = "check"
		var held bool
		if held, err = r.mode.Held(opCtx, want); err == nil && !held {
			r.log.Warn("the VIP mode no longer holds the VIPs: acquiring them again", "vips", want)
			changed, err = r.mode.Acquire(opCtx, want)
			what = "acquire"
		}
	case acquire:
		changed, err = r.mode.Acquire(opCtx, want)
	default:
		what = "release"
		changed, err = r.mode.Release(opCtx, want)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancelOp = nil
	if r.acquire != acquire || !slices.Equal(r.want, want) {
		return time.Now(), false, false // the wish changed meanwhile: act on the new one at once
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return time.Time{}, false, false
		}
		r.st.Held = false
		r.st.Failures++
		r.st.Error = fmt.Sprintf("%s: %v", what, err)
		r.st.NextAttempt = time.Now().Add(r.backoff.after(r.st.Failures))
		r.log.Warn("VIP mode failed: retrying", "op", what, "vips", want, "err", err,
			"attempt", r.st.Failures, "retry_in", time.Until(r.st.NextAttempt).Round(time.Millisecond).String())
		return r.st.NextAttempt, false, false
	}
	if r.st.Failures > 0 || changed {
		r.log.Info("VIP mode "+what+" done", "vips", want, "changed", changed, "after_failures", r.st.Failures)
	}
	r.st.Error, r.st.Failures, r.st.NextAttempt = "", 0, time.Time{}
	if !acquire {
		r.acquired = false
		return time.Time{}, true, false
	}
	was := r.st.Held
	r.st.Held = true
	return time.Now().Add(r.recheck), false, !was
}

// ARP is the arp mode: the local address on the LAN NIC, announced with
// gratuitous ARP and unsolicited neighbour advertisements, is all there is,
// and the Manager does both when it claims the address. Acquire and Release
// have nothing more to do; Held asks the Manager.
type ARP struct{ M *Manager }

var _ Mode = ARP{}

// Name is "arp".
func (ARP) Name() string { return "arp" }

// Acquire does nothing: the Manager announced the VIPs when it claimed them.
func (ARP) Acquire(context.Context, []netip.Prefix) (bool, error) { return false, nil }

// Release does nothing: the Manager removed the addresses.
func (ARP) Release(context.Context, []netip.Prefix) (bool, error) { return false, nil }

// Held reports whether the NIC holds the VIPs.
func (a ARP) Held(_ context.Context, vips []netip.Prefix) (bool, error) { return a.M.Held(vips) }

// Broken stands for a mode this node cannot run (a node-local flag the mode
// needs is missing, or wrong): every call fails with Err, so the Runner
// keeps retrying and reports it, and the node keeps serving the local
// address.
type Broken struct {
	Mode string
	Err  error
}

var _ Mode = Broken{}

// Name is the mode's name.
func (b Broken) Name() string { return b.Mode }

// Acquire fails with b.Err.
func (b Broken) Acquire(context.Context, []netip.Prefix) (bool, error) { return false, b.Err }

// Release has nothing to release.
func (b Broken) Release(context.Context, []netip.Prefix) (bool, error) { return false, nil }

// Held is false.
func (b Broken) Held(context.Context, []netip.Prefix) (bool, error) { return false, b.Err }

// HostRoutes keeps the VIPs on Local as host addresses (/32, /128),
// whatever their prefix length: on a dummy or loopback interface a shorter
// prefix would make the whole subnet local.
type HostRoutes struct{ Local Local }

var _ Local = HostRoutes{}

func hosts(vips []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(vips))
	for i, v := range vips {
		out[i] = netip.PrefixFrom(v.Addr(), v.Addr().BitLen())
	}
	return out
}

// Claim claims the VIPs as host addresses.
func (h HostRoutes) Claim(vips []netip.Prefix) (bool, error) { return h.Local.Claim(hosts(vips)) }

// Release releases them.
func (h HostRoutes) Release(vips []netip.Prefix) (bool, error) { return h.Local.Release(hosts(vips)) }

// Held reports whether they are held.
func (h HostRoutes) Held(vips []netip.Prefix) (bool, error) { return h.Local.Held(hosts(vips)) }

// Renew renews their lease.
func (h HostRoutes) Renew(vips []netip.Prefix) (bool, error) { return h.Local.Renew(hosts(vips)) }
