package netlab

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Pinger pings a target from a host without pause (iputils ping, with
// timestamps) and records when each reply arrives, to measure outages.
type Pinger struct {
	target   netip.Addr
	interval time.Duration
	proc     *Proc

	mu      sync.Mutex    // guards the fields below
	partial []byte        // output not yet ending in a newline
	replies []time.Time   // arrival of each reply (ping's own timestamps)
	mark    time.Time     // start of the measurement
	marked  int           // len(replies) at mark
	wake    chan struct{} // closed and replaced at every reply
	report  *PingReport   // set by the first Stop
}

// A PingReport is what a Pinger measured.
type PingReport struct {
	Target netip.Addr
	// Sent and Received count echo requests and replies over the whole
	// run, as ping's summary gives them.
	Sent, Received int
	// Mark is the start of the measurement (Mark, or the start), Stopped
	// its end.
	Mark, Stopped time.Time
	// RepliesAfterMark counts the replies received after Mark.
	RepliesAfterMark int
	// LongestGap is the longest time without a reply since Mark: between
	// two replies (the first gap starts at the last reply before Mark, or
	// at Mark if there was none), or between the last reply and Stop.
	LongestGap time.Duration
	// GapThreshold is four ping intervals; Gaps lists the gaps since Mark
	// (counted as for LongestGap) longer than that: the outages.
	GapThreshold time.Duration
	Gaps         []Gap
}

// A Gap is a time without replies.
type Gap struct{ From, To time.Time }

// Duration returns the length of the gap.
func (g Gap) Duration() time.Duration { return g.To.Sub(g.From) }

func (r PingReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ping %v: %d sent, %d received; longest gap %v", r.Target, r.Sent, r.Received,
		r.LongestGap.Round(time.Millisecond))
	for _, g := range r.Gaps {
		fmt.Fprintf(&b, "; outage of %v from %s", g.Duration().Round(time.Millisecond), g.From.Format("15:04:05.000"))
	}
	return b.String()
}

// StartPinger starts pinging target from the host every interval (at
// least 10ms), waiting up to a second for each reply.
func (h *Host) StartPinger(target netip.Addr, interval time.Duration) (*Pinger, error) {
	if !target.IsValid() {
		return nil, fmt.Errorf("netlab: invalid ping target")
	}
	interval = max(interval, 10*time.Millisecond)
	family := "-4"
	if target.Is6() && !target.Is4In6() {
		family = "-6"
	}
	p := &Pinger{target: target.Unmap(), interval: interval, wake: make(chan struct{})}
	p.mark = time.Now()
	proc, err := h.StartWith(StartOptions{Output: pingWriter{p}}, "ping", family, "-n", "-D",
		"-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), "-W", "1", p.target.String())
	if err != nil {
		return nil, err
	}
	p.proc = proc
	return p, nil
}

// pingWriter feeds ping's output to the Pinger line by line.
type pingWriter struct{ p *Pinger }

func (w pingWriter) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := string(p.partial[:i])
		p.partial = p.partial[i+1:]
		if t, ok := parseReply(line); ok {
			p.replies = append(p.replies, t)
			close(p.wake)
			p.wake = make(chan struct{})
		}
	}
	return len(b), nil
}

// replyLine matches a reply of ping -D:
// "[1700000000.123456] 64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.05 ms".
var replyLine = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from .*icmp_seq=\d+`)

// parseReply returns the time stamp of a reply line (not of a duplicate).
func parseReply(line string) (time.Time, bool) {
	m := replyLine.FindStringSubmatch(line)
	if m == nil || strings.Contains(line, "(DUP!)") {
		return time.Time{}, false
	}
	sec, err1 := strconv.ParseInt(m[1], 10, 64)
	frac := (m[2] + "000000000")[:9]
	nsec, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec), true
}

// summaryLine matches ping's summary: "10 packets transmitted, 9 received".
var summaryLine = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// Mark starts the measurement now (for example right before a failover):
// gaps and WaitReplies count from here.
func (p *Pinger) Mark() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mark = time.Now()
	p.marked = len(p.replies)
}

// Replies returns the number of replies received since Mark (or the
// start).
func (p *Pinger) Replies() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.replies) - p.marked
}

// LastReply returns when the latest reply arrived (zero if none yet).
func (p *Pinger) LastReply() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.replies) == 0 {
		return time.Time{}
	}
	return p.replies[len(p.replies)-1]
}

// WaitReplies waits until n replies have arrived since Mark (or the
// start). It fails after timeout, or if ping exits.
func (p *Pinger) WaitReplies(n int, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		p.mu.Lock()
		got, wake := len(p.replies)-p.marked, p.wake
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-wake:
		case <-t.C:
			return fmt.Errorf("netlab: %d of %d ping replies from %v within %v", got, n, p.target, timeout)
		case <-p.proc.Done():
			return fmt.Errorf("netlab: ping %v exited after %d of %d replies: %v\n%s", p.target, got, n, p.proc.Wait(), p.proc.Output())
		}
	}
}

// Output returns ping's output so far.
func (p *Pinger) Output() string { return p.proc.Output() }

// Stop stops ping (SIGINT, so that it prints its summary) and reports.
// Later calls return the same report.
func (p *Pinger) Stop() PingReport {
	p.mu.Lock()
	if p.report != nil {
		defer p.mu.Unlock()
		return *p.report
	}
	p.mu.Unlock()

	stopped := time.Now()
	_ = p.proc.Stop(syscall.SIGINT, 3*time.Second)

	p.mu.Lock()
	defer p.mu.Unlock()
	r := PingReport{
		Target:           p.target,
		Mark:             p.mark,
		Stopped:          stopped,
		GapThreshold:     4 * p.interval,
		RepliesAfterMark: len(p.replies) - p.marked,
	}
	if m := summaryLine.FindStringSubmatch(p.proc.Output()); m != nil {
		r.Sent, _ = strconv.Atoi(m[1])
		r.Received, _ = strconv.Atoi(m[2])
	} else {
		r.Received = len(p.replies)
	}
	r.LongestGap, r.Gaps = gaps(p.replies, p.mark, stopped, r.GapThreshold)
	p.report = &r
	return r
}

// gaps returns the longest time without a reply between mark and stopped,
// and the gaps longer than threshold. replies are in order. The first gap
// runs from the last reply before mark (or from mark if there was none):
// the outage as the client saw it.
func gaps(replies []time.Time, mark, stopped time.Time, threshold time.Duration) (time.Duration, []Gap) {
	times := []time.Time{mark}
	for _, t := range replies {
		switch {
		case !t.After(mark):
			times[0] = t
		case t.Before(stopped):
			times = append(times, t)
		}
	}
	times = append(times, stopped)
	var (
		longest time.Duration
		out     []Gap
	)
	for i := 1; i < len(times); i++ {
		g := Gap{times[i-1], times[i]}
		longest = max(longest, g.Duration())
		if g.Duration() > threshold {
			out = append(out, g)
		}
	}
	return longest, out
}
