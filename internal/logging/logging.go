// Package logging builds the process's log/slog loggers: it parses the
// --log-level and --log-format flag values and tags each subsystem's logger
// with a component attribute. It never logs anything itself.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Allowed flag values, in the order they are listed in error messages.
var (
	// Levels are the accepted --log-level values.
	Levels = []string{"debug", "info", "warn", "error"}
	// Formats are the accepted --log-format values.
	Formats = []string{"text", "json"}
)

// ComponentKey is the attribute key that names the subsystem of a log line.
const ComponentKey = "component"

// ParseLevel turns a --log-level value into a slog.Level. It accepts the
// values in Levels, ignoring case and surrounding space.
func ParseLevel(level string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q: must be one of %s", level, strings.Join(Levels, ", "))
}

// New returns a logger writing to w at the given level ("debug", "info",
// "warn" or "error") in the given format ("text" or "json"). An unknown
// value gives an error naming the allowed ones.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	if w == nil {
		return nil, fmt.Errorf("logging: nil writer")
	}
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("invalid log format %q: must be one of %s", format, strings.Join(Formats, ", "))
	}
	return slog.New(h), nil
}

// Component returns l with the attribute component=name added to every
// record. A nil l gets slog.Default().
func Component(l *slog.Logger, name string) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return l.With(slog.String(ComponentKey, name))
}

// Discard returns a logger that drops everything; handy in tests and as a
// default for optional logger fields.
func Discard() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}
