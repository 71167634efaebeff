package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

func filled(b *testing.B, n int) *harness {
	h := newHarness(b, "10.64.0.0/12", "fd00:99::/64")
	for i := range n {
		if _, err := h.addPeer(fmt.Sprintf("peer-%06d", i), seqKey(i)); err != nil {
			b.Fatal(err)
		}
	}
	return h
}

// BenchmarkApplyAddPeer measures Apply of one add-peer (with IPv4 and IPv6
// allocation) on a registry that already holds n peers. Each iteration adds
// a peer and the timer excludes deleting it again, so n stays fixed.
func BenchmarkApplyAddPeer(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			h := filled(b, n)
			entries := make([][]byte, 0, 1)
			del, _ := Encode(CmdDeletePeer, DeletePeer{Name: "bench", At: t0})
			add, _ := Encode(CmdAddPeer, AddPeer{Name: "bench", PublicKey: seqKey(n + 1), PresharedKey: seqKey(n + 2), Enabled: true, At: t0})
			entries = append(entries, add)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res := h.f.Apply(&raft.Log{Index: uint64(i), Type: raft.LogCommand, Data: entries[0]})
				if _, ok := res.(error); ok {
					b.Fatal(res)
				}
				b.StopTimer()
				h.f.Apply(&raft.Log{Index: uint64(i), Type: raft.LogCommand, Data: del})
				b.StartTimer()
			}
		})
	}
}

// BenchmarkSnapshot100k measures writing and restoring a snapshot of
// 100,000 peers.
func BenchmarkSnapshot100k(b *testing.B) {
	h := filled(b, 100_000)
	var buf bytes.Buffer
	b.Run("persist", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			buf.Reset()
			sn, _ := h.f.Snapshot()
			if _, err := sn.(*snapshot).WriteTo(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len()), "bytes")
	})
	data := bytes.Clone(buf.Bytes())
	b.Run("restore", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			f := New(nil)
			if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
				b.Fatal(err)
			}
			if total, _ := f.PeerCounts(); total != 100_000 {
				b.Fatalf("restored %d peers", total)
			}
		}
	})
}

// BenchmarkDigest100k measures the first digest after a write (a full
// encode) and a repeated one (cached) on a 100,000-peer registry.
func BenchmarkDigest100k(b *testing.B) {
	h := filled(b, 100_000)
	b.Run("after-write", func(b *testing.B) {
		for b.Loop() {
			h.f.mu.Lock()
			h.f.gen++ // what an applied command does to the cache
			h.f.mu.Unlock()
			h.f.Digest()
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			h.f.Digest()
		}
	})
}
