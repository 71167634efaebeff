package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestNewLevels(t *testing.T) {
	tests := []struct {
		level   string
		enabled []slog.Level
		off     []slog.Level
	}{
		{"debug", []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}, nil},
		{"info", []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError}, []slog.Level{slog.LevelDebug}},
		{"warn", []slog.Level{slog.LevelWarn, slog.LevelError}, []slog.Level{slog.LevelDebug, slog.LevelInfo}},
		{"error", []slog.Level{slog.LevelError}, []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn}},
		{" INFO ", []slog.Level{slog.LevelInfo}, []slog.Level{slog.LevelDebug}},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			l, err := New(&bytes.Buffer{}, tt.level, "text")
			if err != nil {
				t.Fatalf("New(%q): %v", tt.level, err)
			}
			for _, lv := range tt.enabled {
				if !l.Enabled(t.Context(), lv) {
					t.Errorf("level %q: %v should be enabled", tt.level, lv)
				}
			}
			for _, lv := range tt.off {
				if l.Enabled(t.Context(), lv) {
					t.Errorf("level %q: %v should be disabled", tt.level, lv)
				}
			}
		})
	}
}

func TestNewText(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("hello", "k", "v")
	out := buf.String()
	if strings.Contains(out, "hidden") {
		t.Errorf("debug line written at info level: %q", out)
	}
	if !strings.Contains(out, "level=INFO") || !strings.Contains(out, "msg=hello") || !strings.Contains(out, "k=v") {
		t.Errorf("unexpected text output: %q", out)
	}
}

func TestNewJSON(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	Component(l, "raft").Debug("started", "term", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("output is not one JSON object: %v: %q", err, buf.String())
	}
	want := map[string]any{"level": "DEBUG", "msg": "started", "component": "raft", "term": float64(3)}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantIn              []string
	}{
		{"bad level", "verbose", "text", []string{`"verbose"`, "debug, info, warn, error"}},
		{"empty level", "", "text", []string{"log level", "debug, info, warn, error"}},
		{"bad format", "info", "xml", []string{`"xml"`, "text, json"}},
		{"empty format", "info", "", []string{"log format", "text, json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(&bytes.Buffer{}, tt.level, tt.format)
			if err == nil {
				t.Fatalf("New(%q, %q) = %v, want error", tt.level, tt.format, l)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	if _, err := New(nil, "info", "text"); err == nil {
		t.Error("New(nil writer) did not fail")
	}
}

func TestComponent(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	Component(l, "vip").Info("claimed")
	if !strings.Contains(buf.String(), "component=vip") {
		t.Errorf("missing component attribute: %q", buf.String())
	}
	buf.Reset()
	l.Info("plain")
	if strings.Contains(buf.String(), "component=") {
		t.Errorf("Component changed the parent logger: %q", buf.String())
	}
	if Component(nil, "x") == nil {
		t.Error("Component(nil) returned nil")
	}
}

func TestDiscard(t *testing.T) {
	l := Discard()
	if l.Enabled(t.Context(), slog.LevelError) {
		t.Error("Discard logger is enabled")
	}
	l.Error("nothing")
}
