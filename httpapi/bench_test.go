package httpapi_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/raftguard/raftguard/internal/agent/agenttest"
	"github.com/raftguard/raftguard/internal/testutil"
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
			testutil.Concurrent(b, conc, "creates/s", func(i int64) error {
				cl := clients[i%int64(len(clients))]
				st, body, _ := cl.Call("POST", "/v1/peers", map[string]any{"name": fmt.Sprintf("%s%d", prefix, i)})
				if st != http.StatusCreated {
					return fmt.Errorf("create %d: %d %.200s", i, st, body)
				}
				return nil
			})
		})
	}
}
