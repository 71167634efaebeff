package test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The side-by-side benchmarks print Markdown tables. With
// RAFTGUARD_BENCH_REPORT=FILE set (`make bench-compare` sets it) every
// table is also appended to FILE, so one run yields the tables that
// BENCHMARKS.md quotes.

var reportMu sync.Mutex // serialises appends to the report file

// spread is the min/median/max of a series of measurements.
type spread[T int | int64 | float64 | time.Duration] struct {
	N                int
	Min, Median, Max T
}

func spreadOf[T int | int64 | float64 | time.Duration](xs []T) spread[T] {
	if len(xs) == 0 {
		return spread[T]{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return spread[T]{N: len(s), Min: s[0], Median: s[len(s)/2], Max: s[len(s)-1]}
}

// percentile returns the p-th percentile (0..100, nearest rank) of xs.
func percentile[T int | int64 | float64 | time.Duration](xs []T, p float64) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// ms formats a duration in milliseconds for a table cell.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// durSpread formats a duration spread as "min / median / max".
func durSpread(s spread[time.Duration]) string {
	return fmt.Sprintf("%s / %s / %s", ms(s.Min), ms(s.Median), ms(s.Max))
}

// benchTable prints a Markdown table headed by its title, the command that
// reproduces it and the machine, and appends it to the report file.
func benchTable(tb testing.TB, title, command string, cols []string, rows [][]string) {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s\n\n", title)
	fmt.Fprintf(&b, "Command: `%s`  \nMachine: %s\n\n", command, machine())
	fmt.Fprintf(&b, "| %s |\n", strings.Join(cols, " | "))
	seps := make([]string, len(cols))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(&b, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	report(tb, b.String())
}

// report prints text and appends it to the report file, if one is set.
func report(tb testing.TB, text string) {
	tb.Helper()
	fmt.Print(text)
	path := os.Getenv("RAFTGUARD_BENCH_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Errorf("bench report: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		tb.Errorf("bench report: %v", err)
	}
}

// machine describes this machine for a table: CPU model, cores, kernel,
// Go version and the load average when the table was printed.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = ", load average " + strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("%s, %d cores, %s, %s%s", cpu, runtime.NumCPU(), kernel, runtime.Version(), load)
}

func TestSpreadAndPercentile(t *testing.T) {
	s := spreadOf([]time.Duration{5, 1, 3, 2, 4})
	if s.N != 5 || s.Min != 1 || s.Median != 3 || s.Max != 5 {
		t.Fatalf("spread = %+v", s)
	}
	xs := make([]int, 100)
	for i := range xs {
		xs[i] = 100 - i
	}
	if p := percentile(xs, 50); p != 50 {
		t.Fatalf("p50 = %d, want 50", p)
	}
	if p := percentile(xs, 99); p != 99 {
		t.Fatalf("p99 = %d, want 99", p)
	}
	if p := percentile([]int{7}, 99); p != 7 {
		t.Fatalf("p99 of one = %d", p)
	}
}
