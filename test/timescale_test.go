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

// raftTimeoutFlags returns the flags that stretch a lab server's Raft
// timeouts by the time scale (none at scale 1).
func raftTimeoutFlags() []string {
	if timeScale() == 1 {
		return nil
	}
	return []string{
		"--raft-heartbeat-timeout", scaled(raftnode.DefaultHeartbeatTimeout).String(),
		"--raft-election-timeout", scaled(raftnode.DefaultElectionTimeout).String(),
		"--raft-lease-timeout", scaled(raftnode.DefaultLeaderLeaseTimeout).String(),
	}
}

func TestScaled(t *testing.T) {
	if timeScale() != 1 {
		t.Skip("RAFTGUARD_TEST_TIME_SCALE is set")
	}
	if scaled(3*time.Second) != 3*time.Second || raftTimeoutFlags() != nil {
		t.Fatal("the default time scale changes something")
	}
}
