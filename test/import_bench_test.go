package test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkImport10k imports 10,000 peers from a wg-quick server config
// (raftguard peer import, POST /v1/peers/bulk: entries of 1,000 peers)
// into a 3-node lab cluster and measures the time from the command's start
// until the leader's interface holds every peer.
//
//	go test -run '^$' -bench Import10k -benchtime 1x ./test/
func BenchmarkImport10k(b *testing.B) {
	const n = 10_000
	lc := newLabCluster(b, 3)
	leader := lc.leader()
	var conf strings.Builder
	conf.WriteString("[Interface]\nAddress = fd00:99::1/64\nListenPort = 51820\n")
	for i := range n {
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&conf, "\n[Peer]\n# Name = imp%d\nPublicKey = %s\nAllowedIPs = fd00:99::%x:%x/128\n",
			i, base64.StdEncoding.EncodeToString(k[:]), 1+i/0x10000, 2+i%0x10000)
	}
	file := filepath.Join(b.TempDir(), "wg0.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	count := func() int {
		out, err := leader.host.Run(context.Background(), "wg", "show", leader.wg, "peers")
		if err != nil {
			return -1
		}
		return strings.Count(out, "\n")
	}
	b.ResetTimer()
	start := time.Now()
	if out, err := lc.cli(leader, "peer", "import", file); err != nil {
		b.Fatalf("peer import: %v\n%s", err, out)
	}
	acked := time.Since(start)
	pollEvery(b, 60*time.Second, 100*time.Millisecond, func() error {
		if c := count(); c != n {
			return fmt.Errorf("the leader's interface holds %d peers", c)
		}
		return nil
	})
	onIface := time.Since(start)
	b.StopTimer()
	b.ReportMetric(acked.Seconds(), "s-acked")
	b.ReportMetric(onIface.Seconds(), "s-on-interface")
	b.Logf("%d peers imported: acknowledged after %v, on the leader's interface after %v", n, acked.Round(time.Millisecond), onIface.Round(time.Millisecond))
}
