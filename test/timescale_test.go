package test

import (
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/netlab"
	"github.com/raftguard/raftguard/raftnode"
)

// The time scale of a slow machine. make test-kernel runs the lab inside a
// VM whose CPU qemu emulates (TCG), several times slower than the host, and
// sets RAFTGUARD_TEST_TIME_SCALE there (default 1: no change). The factor
// stretches
//   - every wait for a condition (poll's deadline),
//   - the speed targets: client outages, takeover and release times, the
//     propagation of a change (scaled() at each assertion),
//   - the lab tooling's waits (netlab.WaitScale),
//   - the lab servers' Raft timeouts (heartbeat, election, leader lease), so
//     that an emulated CPU does not mistake its own slowness for a dead
//     leader.
// It never stretches a correctness bound: the longest double holding of the
// VIP, the VIP lease of a killed or frozen leader (a kernel timer), lost
// writes, secrets, the state digests.

var timeScaleOnce = sync.OnceValue(func() float64 {
	v := os.Getenv("RAFTGUARD_TEST_TIME_SCALE")
	if v == "" {
		return 1
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 1 || f > 100 {
		panic("RAFTGUARD_TEST_TIME_SCALE=" + v + ": want a number from 1 to 100")
	}
	return f
})

// The lab tooling waits as long (a tool starting, a link coming up).
func init() { netlab.WaitScale = timeScale() }

// timeScale returns RAFTGUARD_TEST_TIME_SCALE (1 when unset).
func timeScale() float64 { return timeScaleOnce() }

// scaled stretches a wait or a speed target by the time scale.
func scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * timeScale())
}

// labHeartbeat is the Raft heartbeat timeout the lab's servers run with:
// RAFTGUARD_TEST_RAFT_HEARTBEAT (a Go duration, e.g. 150ms) when set, to
// measure other settings than the default (BenchmarkFailover,
// BenchmarkFalseElections); raftnode's default otherwise.
var labHeartbeatOnce = sync.OnceValue(func() time.Duration {
	v := os.Getenv("RAFTGUARD_TEST_RAFT_HEARTBEAT")
	if v == "" {
		return raftnode.DefaultHeartbeatTimeout
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Millisecond || d > 10*time.Second {
		panic("RAFTGUARD_TEST_RAFT_HEARTBEAT=" + v + ": want a duration from 10ms to 10s")
	}
	return d
})

// labRaftTimeouts returns the heartbeat, election and leader lease timeouts
// of the lab's servers before the time scale: the defaults, or with
// RAFTGUARD_TEST_RAFT_HEARTBEAT the election timeout equal to the heartbeat
// timeout and the lease at the same fraction of it as the defaults keep
// (hashicorp/raft wants the lease no longer than the heartbeat timeout).
func labRaftTimeouts() (heartbeat, election, lease time.Duration) {
	h := labHeartbeatOnce()
	if h == raftnode.DefaultHeartbeatTimeout {
		return h, raftnode.DefaultElectionTimeout, raftnode.DefaultLeaderLeaseTimeout
	}
	return h, h * raftnode.DefaultElectionTimeout / raftnode.DefaultHeartbeatTimeout,
		h * raftnode.DefaultLeaderLeaseTimeout / raftnode.DefaultHeartbeatTimeout
}

// raftTimeoutFlags returns the flags that set a lab server's Raft timeouts:
// those of labRaftTimeouts stretched by the time scale (none when both
// leave the defaults).
func raftTimeoutFlags() []string {
	h, e, l := labRaftTimeouts()
	if timeScale() == 1 && h == raftnode.DefaultHeartbeatTimeout {
		return nil
	}
	return []string{
		"--raft-heartbeat-timeout", scaled(h).String(),
		"--raft-election-timeout", scaled(e).String(),
		"--raft-lease-timeout", scaled(l).String(),
	}
}

func TestScaled(t *testing.T) {
	if timeScale() != 1 || os.Getenv("RAFTGUARD_TEST_RAFT_HEARTBEAT") != "" {
		t.Skip("RAFTGUARD_TEST_TIME_SCALE or RAFTGUARD_TEST_RAFT_HEARTBEAT is set")
	}
	if scaled(3*time.Second) != 3*time.Second || raftTimeoutFlags() != nil {
		t.Fatal("the default time scale changes something")
	}
}
