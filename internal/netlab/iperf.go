package netlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// IperfOptions are the settings of an iperf3 client run (TCP).
type IperfOptions struct {
	// Port is the server's port; iperf3's 5201 if zero.
	Port int
	// Duration is the test length (-t); ten seconds if zero.
	Duration time.Duration
	// Interval is the reporting interval (-i, at least 100ms); one second
	// if zero.
	Interval time.Duration
	// Reverse makes the server send and the client receive (-R): the
	// client's intervals then count bytes received, which is what
	// shows a stall.
	Reverse bool
}

// IperfInterval is one reporting interval of an iperf3 run, as the client
// saw it (bytes received with Reverse, bytes sent otherwise).
type IperfInterval struct {
	Start, End time.Duration // since the start of the test
	Bytes      int64
}

// IperfResult is what an iperf3 client run reported.
type IperfResult struct {
	Intervals []IperfInterval
	// SentBps and ReceivedBps are the test's average rates in bits per
	// second, at the sender and at the receiver.
	SentBps, ReceivedBps float64
	// Retransmits counts TCP retransmissions at the sender.
	Retransmits int
	// Error is iperf3's own error message ("" if the test completed),
	// for example when the connection was reset.
	Error string
}

// iperfJSON is the part of iperf3's --json output the lab reads.
type iperfJSON struct {
	Intervals []struct {
		Sum struct {
			Start float64 `json:"start"`
			End   float64 `json:"end"`
			Bytes int64   `json:"bytes"`
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// ParseIperfJSON reads the output of `iperf3 --json` (a TCP test).
func ParseIperfJSON(b []byte) (*IperfResult, error) {
	var j iperfJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("netlab: parsing iperf3 --json output: %w", err)
	}
	r := &IperfResult{
		SentBps:     j.End.SumSent.BitsPerSecond,
		ReceivedBps: j.End.SumReceived.BitsPerSecond,
		Retransmits: j.End.SumSent.Retransmits,
		Error:       j.Error,
	}
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	for _, iv := range j.Intervals {
		r.Intervals = append(r.Intervals, IperfInterval{Start: sec(iv.Sum.Start), End: sec(iv.Sum.End), Bytes: iv.Sum.Bytes})
	}
	return r, nil
}

// LongestStall returns the longest run of consecutive intervals that moved
// no bytes at all, and when it started (since the start of the test). A
// run still going at the last interval counts up to that interval's end.
func (r *IperfResult) LongestStall() (longest, at time.Duration) {
	return r.LongestStallIn(0, math.MaxInt64)
}

// LongestStallIn is LongestStall over the runs that start at or after from
// and before to: the stall caused by an event at a known time.
func (r *IperfResult) LongestStallIn(from, to time.Duration) (longest, at time.Duration) {
	var (
		start   time.Duration
		stalled bool
	)
	for _, iv := range r.Intervals {
		switch {
		case iv.Bytes != 0:
			stalled = false
		case !stalled:
			start, stalled = iv.Start, true
			fallthrough
		default:
			if d := iv.End - start; start >= from && start < to && d > longest {
				longest, at = d, start
			}
		}
	}
	return longest, at
}

// BytesAfter sums the bytes of the intervals that start at or after t.
func (r *IperfResult) BytesAfter(t time.Duration) int64 {
	var n int64
	for _, iv := range r.Intervals {
		if iv.Start >= t {
			n += iv.Bytes
		}
	}
	return n
}

// StartIperfServer runs `iperf3 --server` in the host on port (5201 if
// zero), listening on every address, and returns once it accepts
// connections. The lab ends it on Close, or stop it with Proc.Stop.
func (h *Host) StartIperfServer(port int) (*Proc, error) {
	if port == 0 {
		port = 5201
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("netlab: invalid iperf3 port %d", port)
	}
	p, err := h.Start("iperf3", "--server", "--port", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(patience(10 * time.Second))
	for {
		out, err := h.Run(context.Background(), "ss", "-Htln", "sport", "= :"+strconv.Itoa(port))
		if err == nil && out != "" {
			return p, nil
		}
		if p.Exited() {
			return nil, fmt.Errorf("netlab: iperf3 server in %s exited: %v\n%s", h.name, p.Wait(), p.Output())
		}
		if time.Now().After(deadline) {
			_ = p.Stop(syscall.SIGTERM, 3*time.Second)
			return nil, fmt.Errorf("netlab: iperf3 server in %s not listening on %d after %v", h.name, port, patience(10*time.Second))
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// Iperf runs an iperf3 TCP client in the host against target and returns
// its report. A test that iperf3 cuts short with an error (the connection
// was reset, say) returns the partial report with Error set, and a nil
// error; err is for a test that never started (no server, say) or gave no
// report.
func (h *Host) Iperf(ctx context.Context, target netip.Addr, o IperfOptions) (*IperfResult, error) {
	if !target.IsValid() {
		return nil, errors.New("netlab: invalid iperf3 target")
	}
	if o.Port == 0 {
		o.Port = 5201
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.Port < 1 || o.Port > 65535 || o.Duration < time.Second || o.Interval < 100*time.Millisecond {
		return nil, fmt.Errorf("netlab: invalid iperf3 options %+v", o)
	}
	args := []string{"--client", target.String(), "--port", strconv.Itoa(o.Port), "--json",
		"--time", strconv.FormatFloat(o.Duration.Seconds(), 'f', -1, 64),
		"--interval", strconv.FormatFloat(o.Interval.Seconds(), 'f', -1, 64),
		"--connect-timeout", "5000"}
	if o.Reverse {
		args = append(args, "--reverse")
	}
	// Bounded: the test's length plus time for the connection and the
	// end-of-test exchange, stalls included.
	ctx, cancel := context.WithTimeout(ctx, o.Duration+60*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "iperf3", args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	r, perr := ParseIperfJSON(out)
	if perr != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		return nil, fmt.Errorf("netlab: iperf3 to %v from %s: %v, %w\n%s", target, h.name, err, perr, stderr)
	}
	if len(r.Intervals) == 0 && r.Error != "" {
		// Not a test cut short: one that never started.
		return nil, fmt.Errorf("netlab: iperf3 to %v from %s: %s", target, h.name, r.Error)
	}
	if err != nil && r.Error == "" {
		r.Error = err.Error()
	}
	return r, nil
}
