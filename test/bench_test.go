package test

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFailover measures the outage a WireGuard client sees (longest gap
// between replies to a ping every 50ms through the tunnel) in the namespace
// lab, over five rounds each of a SIGKILL of the leader and of a planned
// `cluster transfer-leader`. Run with -benchtime 1x:
//
//	go test -run '^$' -bench '^BenchmarkFailover$' -benchtime 1x ./test/
func BenchmarkFailover(b *testing.B) {
	const rounds = 5
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
		fmt.Printf("FIGURE %s: n=%d min %v median %v max %v\n", name, len(d), d[0].Round(time.Millisecond), med.Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
		b.ReportMetric(float64(med.Milliseconds()), name+"-median-ms")
	}
	report("kill9", kills)
	report("transfer", transfers)
}
