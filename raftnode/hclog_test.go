package raftnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		out = append(out, m)
	}
	buf.Reset()
	return out
}

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := NewHCLogAdapter(sl)

	l.Trace("hidden by the handler")
	l.Debug("dbg", "k", 1)
	l.Info("info", "err", errors.New("boom"), "f", hclog.Fmt("%d-%s", 7, "x"))
	l.Warn("warn", "odd")
	l.Error("error", 42, "v")
	lines := decodeLines(t, &buf)
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4: %v", len(lines), lines)
	}
	wantLevels := []string{"DEBUG", "INFO", "WARN", "ERROR"}
	for i, m := range lines {
		if m["component"] != "raft" {
			t.Errorf("line %d lacks component=raft: %v", i, m)
		}
		if m["level"] != wantLevels[i] {
			t.Errorf("line %d level = %v, want %s", i, m["level"], wantLevels[i])
		}
	}
	if lines[0]["k"] != float64(1) {
		t.Errorf("debug args: %v", lines[0])
	}
	if lines[1]["err"] != "boom" || lines[1]["f"] != "7-x" {
		t.Errorf("info args: %v", lines[1])
	}
	if lines[2]["EXTRA_VALUE_AT_END"] != "odd" {
		t.Errorf("odd arg: %v", lines[2])
	}
	if lines[3]["42"] != "v" {
		t.Errorf("non-string key: %v", lines[3])
	}
	if l.IsTrace() || !l.IsDebug() || !l.IsInfo() || !l.IsWarn() || !l.IsError() {
		t.Error("Is* disagree with the handler level")
	}

	// With and Named.
	w := l.With("peer", "n2").Named("net").Named("pool")
	if w.Name() != "net.pool" || l.Name() != "" {
		t.Errorf("names: %q %q", w.Name(), l.Name())
	}
	if args := w.ImpliedArgs(); len(args) != 2 || args[0] != "peer" {
		t.Errorf("implied args = %v", args)
	}
	if r := w.ResetNamed("x"); r.Name() != "x" {
		t.Errorf("ResetNamed = %q", r.Name())
	}
	w.Info("hello")
	lines = decodeLines(t, &buf)
	if len(lines) != 1 || lines[0]["peer"] != "n2" || lines[0]["logger"] != "net.pool" || lines[0]["component"] != "raft" {
		t.Errorf("derived logger line: %v", lines)
	}

	// SetLevel filters on top of the handler and is shared with derived loggers.
	l.SetLevel(hclog.Warn)
	if l.GetLevel() != hclog.Warn {
		t.Errorf("GetLevel = %v", l.GetLevel())
	}
	w.Info("dropped")
	l.Info("dropped")
	l.Warn("kept")
	if lines = decodeLines(t, &buf); len(lines) != 1 || lines[0]["msg"] != "kept" {
		t.Errorf("after SetLevel(Warn): %v", lines)
	}
	l.SetLevel(hclog.Off)
	l.Error("dropped")
	if buf.Len() != 0 {
		t.Errorf("Off still logs: %s", buf.String())
	}
	l.SetLevel(hclog.Trace)

	// Standard library adapters.
	std := l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	std.Print("[WARN] careful")
	std.Print("[DEBUG] detail")
	std.Print("plain")
	lines = decodeLines(t, &buf)
	if len(lines) != 3 || lines[0]["level"] != "WARN" || lines[0]["msg"] != "careful" ||
		lines[1]["level"] != "DEBUG" || lines[2]["level"] != "INFO" || lines[2]["msg"] != "plain" {
		t.Errorf("standard logger lines: %v", lines)
	}
	sw := l.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error})
	sw.Write([]byte("one\ntwo\n"))
	lines = decodeLines(t, &buf)
	if len(lines) != 2 || lines[0]["level"] != "ERROR" || lines[1]["msg"] != "two" {
		t.Errorf("standard writer lines: %v", lines)
	}
	ts := l.StandardLogger(&hclog.StandardLoggerOptions{InferLevelsWithTimestamp: true})
	ts.Print("2024/01/01 10:00:00 [ERR] bad")
	if lines = decodeLines(t, &buf); len(lines) != 1 || lines[0]["level"] != "ERROR" || lines[0]["msg"] != "bad" {
		t.Errorf("timestamped line: %v", lines)
	}
}

func TestHCLogAdapterSource(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true}))
	NewHCLogAdapter(sl).Info("where")
	lines := decodeLines(t, &buf)
	src, _ := lines[0]["source"].(map[string]any)
	if file, _ := src["file"].(string); !strings.HasSuffix(file, "hclog_test.go") {
		t.Errorf("source = %v, want the caller (hclog_test.go)", src)
	}
}
