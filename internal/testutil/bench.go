package testutil

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent is the one way the module's benchmarks drive a write path from
// many clients at once. It calls op b.N times, with i from 1 to b.N, from
// clients goroutines, and reports the calls per second under the name unit
// ("creates/s") with the median and 99th percentile latency of one call in
// milliseconds (p50-ms, p99-ms). The first error op returns stops the run
// and fails b.
func Concurrent(b *testing.B, clients int, unit string, op func(i int64) error) {
	b.Helper()
	var (
		next   atomic.Int64
		failed atomic.Pointer[error]
		wg     sync.WaitGroup
	)
	lat := make([][]time.Duration, clients)
	b.ResetTimer()
	start := time.Now()
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) || failed.Load() != nil {
					return
				}
				t0 := time.Now()
				err := op(i)
				lat[g] = append(lat[g], time.Since(t0))
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), unit)
	b.ReportMetric(quantileMs(all, 0.50), "p50-ms")
	b.ReportMetric(quantileMs(all, 0.99), "p99-ms")
}

// quantileMs returns the p-quantile (0 to 1) of sorted in milliseconds, 0
// for none.
func quantileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Microseconds()) / 1000
}
