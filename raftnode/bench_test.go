package raftnode

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkReplicatedApply measures committed-and-applied commands per second
// on a 3-node loopback cluster with mutual TLS and fsynced bolt stores, with
// 1 and 32 concurrent proposers on the leader.
func BenchmarkReplicatedApply(b *testing.B) {
	c := newTestCluster(b, nil)
	c.bootstrap(3)
	payload := bytes.Repeat([]byte{'x'}, 128)

	for _, proposers := range []int{1, 32} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			var (
				leader atomic.Pointer[testNode]
				next   atomic.Int64
				failed atomic.Value
				wg     sync.WaitGroup
			)
			leader.Store(c.leader())
			b.ResetTimer()
			start := time.Now()
			for range proposers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := applyRetrying(c, &leader, payload); err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
		})
	}
}

// applyRetrying applies on the cached leader, following leadership changes
// for up to ten seconds.
func applyRetrying(c *testCluster, leader *atomic.Pointer[testNode], cmd []byte) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := leader.Load().Apply(cmd)
		if !errors.Is(err, ErrNotLeader) {
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		for _, n := range c.nodes {
			if n.IsLeader() {
				leader.Store(n)
			}
		}
		time.Sleep(time.Millisecond) // back off while an election runs
	}
}
