package netlab

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

// iperfSample is trimmed `iperf3 --json --reverse` output of a test whose
// data stalled for 0.3s, then was cut by a reset.
const iperfSample = `{
	"start": {"connected": [{"socket": 5}]},
	"intervals": [
		{"streams": [], "sum": {"start": 0, "end": 0.1, "seconds": 0.1, "bytes": 1000, "bits_per_second": 80000}},
		{"streams": [], "sum": {"start": 0.1, "end": 0.2, "seconds": 0.1, "bytes": 0, "bits_per_second": 0}},
		{"streams": [], "sum": {"start": 0.2, "end": 0.3, "seconds": 0.1, "bytes": 0, "bits_per_second": 0}},
		{"streams": [], "sum": {"start": 0.3, "end": 0.4, "seconds": 0.1, "bytes": 0, "bits_per_second": 0}},
		{"streams": [], "sum": {"start": 0.4, "end": 0.5, "seconds": 0.1, "bytes": 2000, "bits_per_second": 160000}},
		{"streams": [], "sum": {"start": 0.5, "end": 0.6, "seconds": 0.1, "bytes": 0, "bits_per_second": 0}}
	],
	"end": {
		"sum_sent": {"bytes": 3000, "bits_per_second": 40000, "retransmits": 7},
		"sum_received": {"bytes": 3000, "bits_per_second": 39000}
	},
	"error": "error - control socket has closed unexpectedly"
}`

func TestParseIperfJSON(t *testing.T) {
	r, err := ParseIperfJSON([]byte(iperfSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Intervals) != 6 || r.Intervals[4].Bytes != 2000 || r.Intervals[4].Start != 400*time.Millisecond {
		t.Fatalf("intervals = %+v", r.Intervals)
	}
	if r.SentBps != 40000 || r.ReceivedBps != 39000 || r.Retransmits != 7 {
		t.Errorf("rates %v/%v, retransmits %d", r.SentBps, r.ReceivedBps, r.Retransmits)
	}
	if r.Error == "" {
		t.Error("error not read")
	}
	stall, at := r.LongestStall()
	if stall < 299*time.Millisecond || stall > 301*time.Millisecond || at < 99*time.Millisecond || at > 101*time.Millisecond {
		t.Errorf("LongestStall = %v at %v, want 300ms at 100ms", stall, at)
	}
	if stall, at := r.LongestStallIn(50*time.Millisecond, 150*time.Millisecond); stall < 299*time.Millisecond || stall > 301*time.Millisecond || at < 99*time.Millisecond || at > 101*time.Millisecond {
		t.Errorf("LongestStallIn(50ms, 150ms) = %v at %v, want 300ms at 100ms", stall, at)
	}
	if stall, at := r.LongestStallIn(450*time.Millisecond, time.Second); stall < 99*time.Millisecond || stall > 101*time.Millisecond || at < 499*time.Millisecond {
		t.Errorf("LongestStallIn(450ms, 1s) = %v at %v, want the last 100ms", stall, at)
	}
	if stall, _ := r.LongestStallIn(150*time.Millisecond, 450*time.Millisecond); stall != 0 {
		t.Errorf("LongestStallIn(150ms, 450ms) = %v, want none starting there", stall)
	}
	if n := r.BytesAfter(350 * time.Millisecond); n != 2000 {
		t.Errorf("BytesAfter(350ms) = %d, want 2000", n)
	}
	if _, err := ParseIperfJSON([]byte("iperf3: error - unable to connect")); err == nil {
		t.Error("non-JSON output accepted")
	}
	empty := &IperfResult{}
	if d, _ := empty.LongestStall(); d != 0 {
		t.Errorf("empty LongestStall = %v", d)
	}
}

func TestParseRTTs(t *testing.T) {
	out := `PING 192.0.2.2 (192.0.2.2) 56(84) bytes of data.
64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.045 ms
64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.050 ms (DUP!)
64 bytes from 192.0.2.2: icmp_seq=3 ttl=64 time=1.5 ms

--- 192.0.2.2 ping statistics ---
3 packets transmitted, 2 received, +1 duplicates, 33% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.045/0.772/1.500/0.727 ms
`
	got := parseRTTs(out)
	if len(got) != 2 || got[0] != 45*time.Microsecond || got[1] != 1500*time.Microsecond {
		t.Fatalf("parseRTTs = %v", got)
	}
}

// TestIperfAndRTT runs iperf3 and ping between two lab hosts.
func TestIperfAndRTT(t *testing.T) {
	l := newLab(t, "iperf3", "ping", "ss")
	a := addHost(t, l, "a", "192.0.2.1/24", "2001:db8::1/64")
	b := addHost(t, l, "b", "192.0.2.2/24", "2001:db8::2/64")
	if _, err := b.StartIperfServer(0); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := a.Iperf(ctx, b.IPv4().Addr(), IperfOptions{Duration: time.Second, Interval: 200 * time.Millisecond, Reverse: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Error != "" || r.ReceivedBps <= 0 || len(r.Intervals) < 4 {
		t.Fatalf("iperf3: error %q, %v bit/s received, %d intervals", r.Error, r.ReceivedBps, len(r.Intervals))
	}
	if d, _ := r.LongestStall(); d != 0 {
		t.Errorf("stall of %v on a plain link", d)
	}
	// Nobody listens on 5202: a clear error, no report.
	if _, err := a.Iperf(ctx, b.IPv4().Addr(), IperfOptions{Port: 5202, Duration: time.Second}); err == nil {
		t.Error("iperf3 to a closed port succeeded")
	}
	if _, err := a.Iperf(ctx, b.IPv4().Addr(), IperfOptions{Interval: time.Millisecond}); err == nil {
		t.Error("an interval of 1ms accepted")
	}

	rtts, err := a.PingRTTs(ctx, netip.MustParseAddr("2001:db8::2"), 20, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(rtts) < 15 {
		t.Errorf("%d of 20 replies on a plain link", len(rtts))
	}
	for _, d := range rtts {
		if d <= 0 || d > time.Second {
			t.Errorf("RTT %v out of range", d)
		}
	}
	if _, err := a.PingRTTs(ctx, netip.MustParseAddr("192.0.2.99"), 2, 10*time.Millisecond); err == nil {
		t.Error("ping of an absent host returned RTTs")
	}
}
