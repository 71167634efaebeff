package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkImport10k imports 10,000 peers from a wg-quick server config
// (raftguard peer import, POST /v1/peers/bulk: entries of 1,000 peers)
// into a 3-node lab cluster and measures the time from the command's start
// until the leader's interface holds every peer (as the leader's data plane
// logs it; confirmed with wg show afterwards).
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
	// The leader's data plane logs (at debug level, as the lab's servers
	// run) when a configuration is on its interface, with the interface's
	// peer count and a time stamp. Reading that log does not disturb the
	// interface; reading the interface itself does: a `wg show` dumps every
	// peer and holds wireguard-go's configuration lock meanwhile (seconds,
	// with 10,000 peers on this machine), delaying the very changes it
	// waits for. It is read once, to confirm.
	logFile := filepath.Join(lc.logDir, leader.id+".log")
	configured := func(since int64) (time.Time, int64, error) {
		f, err := os.Open(logFile)
		if err != nil {
			return time.Time{}, since, err
		}
		defer f.Close()
		if _, err := f.Seek(since, io.SeekStart); err != nil {
			return time.Time{}, since, err
		}
		data, err := io.ReadAll(f)
		if err != nil {
			return time.Time{}, since, err
		}
		// Only whole lines; a partial last line is read again next time.
		end := bytes.LastIndexByte(data, '\n') + 1
		for _, line := range strings.Split(string(data[:end]), "\n") {
			if !strings.Contains(line, `msg="interface configured"`) || !strings.Contains(line, fmt.Sprintf(" peers=%d", n)) {
				continue
			}
			ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			at, err := time.Parse(time.RFC3339Nano, ts)
			return at, since + int64(end), err
		}
		return time.Time{}, since + int64(end), nil
	}
	offset, err := os.Stat(logFile)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	if out, err := lc.cli(leader, "peer", "import", file); err != nil {
		b.Fatalf("peer import: %v\n%s", err, out)
	}
	acked := time.Since(start)
	var at time.Time
	pos := offset.Size()
	pollEvery(b, 60*time.Second, 100*time.Millisecond, func() error {
		var err error
		if at, pos, err = configured(pos); err != nil || at.IsZero() {
			return fmt.Errorf("the leader has not logged %d peers on its interface (%v)", n, err)
		}
		return nil
	})
	onIface := at.Sub(start)
	out, err := leader.host.Run(context.Background(), "wg", "show", leader.wg, "peers")
	if err != nil || strings.Count(out, "\n") != n {
		b.Fatalf("the leader's interface holds %d peers, want %d (%v)", strings.Count(out, "\n"), n, err)
	}
	b.StopTimer()
	b.ReportMetric(acked.Seconds(), "s-acked")
	b.ReportMetric(onIface.Seconds(), "s-on-interface")
	b.Logf("%d peers imported: acknowledged after %v, on the leader's interface after %v", n, acked.Round(time.Millisecond), onIface.Round(time.Millisecond))
}
