package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/agent/agenttest"
)

// BenchmarkCreatePeers measures peer creates through HTTPS against a real
// three-node cluster in this process, with the requests spread round-robin
// over the three nodes (so two thirds are forwarded by a follower to the
// leader), at several numbers of concurrent clients. The server generates
// each peer's keys, as `raftguard peer add` has it do. It reports creates
// per second and the median and 99th percentile latency.
func BenchmarkCreatePeers(b *testing.B) {
	tc := agenttest.Three(b)
	var clients []*agenttest.Client
	for _, id := range nodeIDs {
		clients = append(clients, tc.Client(id))
	}
	var run atomic.Int64 // names stay unique across runs
	for _, conc := range []int{1, 8, 32, 128} {
		b.Run(fmt.Sprintf("clients=%d", conc), func(b *testing.B) {
			prefix := fmt.Sprintf("b%d-", run.Add(1))
			var next atomic.Int64
			lat := make([][]time.Duration, conc)
			var failed atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for g := range conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) || failed.Load() != nil {
							return
						}
						cl := clients[i%int64(len(clients))]
						t0 := time.Now()
						st, body, _ := cl.Call("POST", "/v1/peers", map[string]any{"name": fmt.Sprintf("%s%d", prefix, i)})
						lat[g] = append(lat[g], time.Since(t0))
						if st != http.StatusCreated {
							failed.CompareAndSwap(nil, fmt.Sprintf("create %d: %d %.200s", i, st, body))
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if f := failed.Load(); f != nil {
				b.Fatal(f)
			}
			all := slices.Concat(lat...)
			slices.Sort(all)
			pct := func(p float64) float64 {
				if len(all) == 0 {
					return 0
				}
				return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "creates/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
