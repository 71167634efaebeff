package test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/pki"
)

// BenchmarkFailover measures the outage a WireGuard client sees (longest gap
// between replies to a ping every 50ms through the tunnel) in the namespace
// lab, over five rounds each of a SIGKILL of the leader and of a planned
// `cluster transfer-leader`. Run with -benchtime 1x:
//
//	go test -run '^$' -bench '^BenchmarkFailover$' -benchtime 1x ./test/
//
// RAFTGUARD_TEST_RAFT_HEARTBEAT=150ms runs every lab server with that Raft
// heartbeat timeout (and election and lease timeouts to match, see
// labRaftTimeouts); RAFTGUARD_BENCH_ROUNDS changes the rounds (default 5).
func BenchmarkFailover(b *testing.B) {
	rounds := benchRounds(b)
	lc := newLabCluster(b, 3)
	lc.addClient(lc.servers[1], "bench")
	p, err := lc.client.StartPinger(tunnelServer4, 50*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.WaitReplies(3, 15*time.Second); err != nil {
		b.Fatal(err)
	}
	p.Stop()
	waitEndpoint(b, lc, "bench") // the leader records it once a second
	var kills, transfers []time.Duration
	for i := 0; i < b.N; i++ {
		for range rounds {
			leader := lc.leader()
			kills = append(kills, outage(b, lc, tunnelServer4, func() { kill(b, leader, syscall.SIGKILL) }))
			lc.start(leader)
			lc.waitHealthy(3)
			waitEndpoint(b, lc, "bench") // on every node, the restarted one too
		}
		for range rounds {
			via := lc.servers[0]
			transfers = append(transfers, outage(b, lc, tunnelServer4, func() {
				if out, err := lc.cli(via, "cluster", "transfer-leader"); err != nil {
					b.Fatalf("transfer-leader: %v\n%s", err, out)
				}
			}))
			lc.waitHealthy(3)
		}
	}
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		med := d[len(d)/2]
		fmt.Printf("FIGURE %s (%s): n=%d min %v median %v max %v; load average %s\n", name, raftTimeoutsString(), len(d), d[0].Round(time.Millisecond), med.Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond), loadAverage())
		b.ReportMetric(float64(med.Milliseconds()), name+"-median-ms")
	}
	report("kill9", kills)
	report("transfer", transfers)
}

// benchRounds returns RAFTGUARD_BENCH_ROUNDS (default 5).
func benchRounds(b *testing.B) int {
	v := os.Getenv("RAFTGUARD_BENCH_ROUNDS")
	if v == "" {
		return 5
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("RAFTGUARD_BENCH_ROUNDS=%q: want a positive number", v)
	}
	return n
}

// raftTimeoutsString names the lab servers' Raft timeouts for a figure.
func raftTimeoutsString() string {
	h, e, l := labRaftTimeouts()
	return fmt.Sprintf("heartbeat %v, election %v, lease %v", scaled(h), scaled(e), scaled(l))
}

// loadAverage returns the machine's 1, 5 and 15 minute load averages, to be
// printed with every figure: the machine is shared and its load moves them.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// BenchmarkFalseElections counts the elections a healthy 3-node lab cluster
// holds when nothing fails: first idle, then under the fault suite's write
// workload (faultRate attempts per second from the client host, no
// faults), each for RAFTGUARD_BENCH_WINDOW (default 60s). An election is a
// step of the Raft term (the highest any node reports, read at the start
// and end of each window); the leader changes seen by polling every node's
// GET /v1/cluster every 100ms are printed beside it. With
// RAFTGUARD_TEST_RAFT_HEARTBEAT it measures another heartbeat timeout:
//
//	RAFTGUARD_TEST_RAFT_HEARTBEAT=150ms go test -run '^$' -bench '^BenchmarkFalseElections$' -benchtime 1x ./test/
func BenchmarkFalseElections(b *testing.B) {
	window := time.Minute
	if v := os.Getenv("RAFTGUARD_BENCH_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("RAFTGUARD_BENCH_WINDOW=%q: want a positive duration", v)
		}
		window = d
	}
	lc := newLabCluster(b, 3)
	var apis []*nodeAPI
	for _, s := range lc.servers {
		info, err := agent.ReadNodeInfo(s.dir)
		if err != nil {
			b.Fatal(err)
		}
		ca, err := os.ReadFile(info.CACertFile)
		if err != nil {
			b.Fatal(err)
		}
		tc, err := pki.CAClientConfig(ca)
		if err != nil {
			b.Fatal(err)
		}
		a := newNodeAPI(s.id, lc.client, info.APIAdvertise, tc, info.AdminToken, scaled(8*time.Second))
		b.Cleanup(a.close)
		apis = append(apis, a)
	}
	// term is the highest term any node reports.
	term := func() uint64 {
		var t uint64
		for _, s := range lc.servers {
			if st, err := lc.status(s); err == nil {
				t = max(t, st.Term)
			}
		}
		return t
	}
	// measure runs one window and returns the term steps and the leader
	// changes seen in it.
	measure := func() (elections uint64, changes int) {
		stop := make(chan struct{})
		done := make(chan int)
		go func() {
			last, n := "", 0
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					done <- n
					return
				case <-tick.C:
				}
				for _, s := range lc.servers {
					st, err := lc.status(s)
					if err != nil || st.LeaderID == "" {
						continue
					}
					if last != "" && st.LeaderID != last {
						n++
					}
					last = st.LeaderID
					break
				}
			}
		}()
		t0 := term()
		time.Sleep(window) // the window itself is the measurement, not a wait for a condition
		t1 := term()
		close(stop)
		return t1 - t0, <-done
	}
	lc.waitHealthy(3)
	for i := 0; i < b.N; i++ {
		idleLoad := loadAverage()
		idleElections, idleChanges := measure()
		fmt.Printf("FIGURE false-elections idle (%s): %d elections (term steps), %d leader changes seen in %v; load average %s at start, %s at end\n",
			raftTimeoutsString(), idleElections, idleChanges, window, idleLoad, loadAverage())
		b.ReportMetric(float64(idleElections), "idle-elections")

		wl := startWorkload(b, apis, workloadConfig{Rate: faultRate})
		b.Cleanup(wl.abort)
		wlLoad := loadAverage()
		wlElections, wlChanges := measure()
		stats := wl.Stop()
		fmt.Printf("FIGURE false-elections workload (%s): %d elections (term steps), %d leader changes seen in %v under %d writes/s; load average %s at start, %s at end; workload: %v\n",
			raftTimeoutsString(), wlElections, wlChanges, window, faultRate, wlLoad, loadAverage(), stats)
		b.ReportMetric(float64(wlElections), "workload-elections")
	}
}
