package raftnode

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/testutil"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// benchClients is the number of concurrent proposers the ceiling is
// measured at: the 32 clients of httpapi's BenchmarkCreatePeers goal.
const benchClients = 32

// createEntry returns the log entry a peer create through the API writes: an
// AddPeer with a generated key pair and preshared key, wrapped with its audit
// record, framed by fsm.Encode.
func createEntry(b *testing.B) []byte {
	b.Helper()
	kp, err := wgkey.Generate()
	if err != nil {
		b.Fatal(err)
	}
	psk, err := wgkey.Preshared()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	add := fsm.AddPeer{Name: "b3-123456", PublicKey: kp.Public, PresharedKey: psk, Enabled: true, At: now}
	a, err := fsm.Audited(fsm.CmdAddPeer, add, fsm.AuditRecord{
		Time: now, TokenID: "0123456789abcdef", Source: "127.0.0.1:54321", Node: "n2",
		Action: fsm.CmdAddPeer.String(), Target: add.Name, Result: "ok",
	})
	if err != nil {
		b.Fatal(err)
	}
	entry, err := fsm.Encode(fsm.CmdAudit, a)
	if err != nil {
		b.Fatal(err)
	}
	return entry
}

// BenchmarkReplicatedApply measures committed-and-applied commands per second
// on a 3-node loopback cluster with mutual TLS and fsynced bolt stores, with
// 1 and 32 concurrent proposers on the leader, each command the size of a
// peer create's log entry. It reports the median and 99th percentile time of
// one Apply.
func BenchmarkReplicatedApply(b *testing.B) {
	c := newTestCluster(b, nil)
	c.bootstrap(3)
	payload := createEntry(b)

	for _, proposers := range []int{1, benchClients} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			var leader atomic.Pointer[testNode]
			leader.Store(c.leader())
			testutil.Concurrent(b, proposers, "ops/s", func(int64) error {
				return applyRetrying(c, &leader, payload)
			})
			b.ReportMetric(float64(len(payload)), "B/entry")
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

// BenchmarkBareRaftApply measures the ceiling under raftguard's writes:
// hashicorp/raft alone, without this package, TLS, the replicated state or
// the API. Three nodes in this process, each with a raft-boltdb store on disk
// (an fsync per log write, as in production) and raft's plain TCP transport
// on loopback, raftguard's Raft timing and snapshot defaults, an FSM that
// keeps every entry, and 32 goroutines calling Apply on the leader with a
// peer create's log entry. pipeline=off replicates as raftguard does (one
// AppendEntries at a time per follower, see noPipeline); pipeline=on is
// hashicorp/raft's own default.
func BenchmarkBareRaftApply(b *testing.B) {
	payload := createEntry(b)
	for _, pipeline := range []bool{false, true} {
		name := map[bool]string{false: "pipeline=off", true: "pipeline=on"}[pipeline]
		b.Run(name, func(b *testing.B) {
			rafts := bareCluster(b, 3, pipeline)
			b.Run(fmt.Sprintf("clients=%d", benchClients), func(b *testing.B) {
				var leader atomic.Pointer[raft.Raft]
				leader.Store(bareLeader(b, rafts))
				testutil.Concurrent(b, benchClients, "applies/s", func(int64) error {
					deadline := time.Now().Add(10 * time.Second)
					for {
						err := leader.Load().Apply(payload, DefaultApplyTimeout).Error()
						if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) || time.Now().After(deadline) {
							return err
						}
						for _, r := range rafts {
							if r.State() == raft.Leader {
								leader.Store(r)
							}
						}
						time.Sleep(time.Millisecond) // back off while an election runs
					}
				})
				b.ReportMetric(float64(len(payload)), "B/entry")
			})
		})
	}
}

// bareCluster starts n hashicorp/raft nodes on loopback and bootstraps them
// as one cluster. Everything is shut down when b ends.
func bareCluster(b *testing.B, n int, pipeline bool) []*raft.Raft {
	b.Helper()
	type node struct {
		id    raft.ServerID
		dir   string
		trans *raft.NetworkTransport
	}
	var (
		nodes   []node
		servers []raft.Server
	)
	for i := 1; i <= n; i++ {
		trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, transportMaxPool, transportTimeout, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = trans.Close() })
		id := raft.ServerID(fmt.Sprintf("n%d", i))
		nodes = append(nodes, node{id: id, dir: b.TempDir(), trans: trans})
		servers = append(servers, raft.Server{ID: id, Address: trans.LocalAddr()})
	}
	var rafts []*raft.Raft
	for _, nd := range nodes {
		cfg := Config{NodeID: string(nd.id), Logger: testLogger()}
		cfg.setDefaults()
		rc := cfg.raftConfig()
		store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(nd.dir, "raft.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = store.Close() })
		snaps, err := raft.NewFileSnapshotStore(nd.dir, 1, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		var trans raft.Transport = nd.trans
		if !pipeline {
			trans = noPipeline{nd.trans}
		}
		if err := raft.BootstrapCluster(rc, store, store, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			b.Fatal(err)
		}
		r, err := raft.NewRaft(rc, &testFSM{}, store, store, snaps, trans)
		if err != nil {
			b.Fatal(err)
		}
		// Cleanups run last-in first-out: raft stops before its store
		// and transport close.
		b.Cleanup(func() { _ = r.Shutdown().Error() })
		rafts = append(rafts, r)
	}
	return rafts
}

// bareLeader polls until one of rafts leads and returns it.
func bareLeader(b *testing.B, rafts []*raft.Raft) *raft.Raft {
	b.Helper()
	var leader *raft.Raft
	waitFor(b, waitTime, "a leader", func() bool {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
				return true
			}
		}
		return false
	})
	return leader
}
