package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// rttLine matches the round-trip time of a ping reply: "... time=0.123 ms".
var rttLine = regexp.MustCompile(`bytes from .* time=([0-9.]+) ms`)

// parseRTTs returns the round-trip times of the replies in ping's output
// (duplicates left out), in order.
func parseRTTs(out string) []time.Duration {
	var rtts []time.Duration
	for _, line := range strings.Split(out, "\n") {
		m := rttLine.FindStringSubmatch(line)
		if m == nil || strings.Contains(line, "(DUP!)") {
			continue
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		rtts = append(rtts, time.Duration(v*float64(time.Millisecond)))
	}
	return rtts
}

// PingRTTs sends count echo requests from the host to target, one every
// interval (at least 10ms), and returns the round-trip time of each reply
// received, in order. Lost requests are missing from the result; it is an
// error only when none came back.
func (h *Host) PingRTTs(ctx context.Context, target netip.Addr, count int, interval time.Duration) ([]time.Duration, error) {
	if !target.IsValid() || count < 1 {
		return nil, fmt.Errorf("netlab: invalid ping of %v, count %d", target, count)
	}
	interval = max(interval, 10*time.Millisecond)
	family := "-4"
	if target.Is6() && !target.Is4In6() {
		family = "-6"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(count)*interval+30*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "ping", family, "-n", "-c", strconv.Itoa(count),
		"-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), "-W", "1", target.Unmap().String())
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	rtts := parseRTTs(string(out))
	if len(rtts) == 0 {
		return nil, fmt.Errorf("netlab: no ping reply from %v in %s: %v\n%s", target, h.name, err, out)
	}
	return rtts, nil
}
