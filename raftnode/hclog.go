package raftnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level hclog's Trace maps to (below slog.LevelDebug).
const LevelTrace = slog.LevelDebug - 4

var _ hclog.Logger = (*hclogAdapter)(nil)

// hclogAdapter implements hclog.Logger on top of a *slog.Logger, so that
// hashicorp/raft's logs join the process log with component=raft.
type hclogAdapter struct {
	logger  *slog.Logger // already carries component=raft and the implied args
	name    string
	implied []any
	// level is shared with the loggers derived through With and Named, as
	// hclog's own loggers do unless configured otherwise.
	level *atomic.Int32
}

// NewHCLogAdapter returns an hclog.Logger that writes to l with the attribute
// component=raft. hclog levels map to slog levels: Trace to LevelTrace, Debug,
// Info, Warn and Error to their namesakes; NoLevel logs at Info. The slog
// handler's own level filters on top of the adapter's level (initially
// Trace, so the handler decides).
func NewHCLogAdapter(l *slog.Logger) hclog.Logger {
	if l == nil {
		l = slog.Default()
	}
	lv := new(atomic.Int32)
	lv.Store(int32(hclog.Trace))
	return &hclogAdapter{logger: l.With("component", "raft"), level: lv}
}

func toSlogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel, DefaultLevel
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) enabled(level hclog.Level) bool {
	if level == hclog.Off {
		return false
	}
	min := hclog.Level(a.level.Load())
	if min == hclog.Off {
		return false
	}
	if level != hclog.NoLevel && level < min {
		return false
	}
	return a.logger.Enabled(context.Background(), toSlogLevel(level))
}

// Log emits a message at level with hclog-style key/value args.
func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	a.log(level, msg, args)
}

func (a *hclogAdapter) log(level hclog.Level, msg string, args []any) {
	if !a.enabled(level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // skip runtime.Callers, log, and Log/Info/...
	r := slog.NewRecord(time.Now(), toSlogLevel(level), msg, pcs[0])
	if a.name != "" {
		r.AddAttrs(slog.String("logger", a.name))
	}
	r.AddAttrs(convertArgs(args)...)
	_ = a.logger.Handler().Handle(context.Background(), r)
}

// convertArgs turns hclog's alternating keys and values into slog attributes:
// non-string keys are formatted, hclog.Format values are rendered, and an odd
// trailing value is kept under EXTRA_VALUE_AT_END as hclog does.
func convertArgs(args []any) []slog.Attr {
	if len(args) == 0 {
		return nil
	}
	attrs := make([]slog.Attr, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			attrs = append(attrs, slog.Any("EXTRA_VALUE_AT_END", convertValue(args[i])))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		attrs = append(attrs, slog.Any(key, convertValue(args[i+1])))
	}
	return attrs
}

func convertValue(v any) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		if f, ok := v[0].(string); ok {
			return fmt.Sprintf(f, v[1:]...)
		}
		return fmt.Sprint(v...)
	case hclog.Hex:
		return fmt.Sprintf("0x%x", int(v))
	case hclog.Octal:
		return fmt.Sprintf("0%o", int(v))
	case hclog.Binary:
		return fmt.Sprintf("0b%b", int(v))
	case hclog.Quote:
		return fmt.Sprintf("%q", string(v))
	case error:
		if v == nil {
			return nil
		}
		return v.Error()
	default:
		return v
	}
}

// Trace logs at trace level.
func (a *hclogAdapter) Trace(msg string, args ...any) { a.log(hclog.Trace, msg, args) }

// Debug logs at debug level.
func (a *hclogAdapter) Debug(msg string, args ...any) { a.log(hclog.Debug, msg, args) }

// Info logs at info level.
func (a *hclogAdapter) Info(msg string, args ...any) { a.log(hclog.Info, msg, args) }

// Warn logs at warn level.
func (a *hclogAdapter) Warn(msg string, args ...any) { a.log(hclog.Warn, msg, args) }

// Error logs at error level.
func (a *hclogAdapter) Error(msg string, args ...any) { a.log(hclog.Error, msg, args) }

// IsTrace reports whether trace messages are emitted.
func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }

// IsDebug reports whether debug messages are emitted.
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }

// IsInfo reports whether info messages are emitted.
func (a *hclogAdapter) IsInfo() bool { return a.enabled(hclog.Info) }

// IsWarn reports whether warnings are emitted.
func (a *hclogAdapter) IsWarn() bool { return a.enabled(hclog.Warn) }

// IsError reports whether errors are emitted.
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

// ImpliedArgs returns the key/value pairs added with With.
func (a *hclogAdapter) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

// With returns a logger that adds args to every message.
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	if len(args) == 0 {
		return a
	}
	b := *a
	b.implied = append(append([]any(nil), a.implied...), args...)
	attrs := convertArgs(args)
	anyAttrs := make([]any, len(attrs))
	for i, at := range attrs {
		anyAttrs[i] = at
	}
	b.logger = a.logger.With(anyAttrs...)
	return &b
}

// Name returns the logger's name.
func (a *hclogAdapter) Name() string { return a.name }

// Named returns a logger whose name is this one's with name appended.
func (a *hclogAdapter) Named(name string) hclog.Logger {
	b := *a
	if a.name != "" {
		b.name = a.name + "." + name
	} else {
		b.name = name
	}
	return &b
}

// ResetNamed returns a logger named exactly name.
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	b := *a
	b.name = name
	return &b
}

// SetLevel sets the minimum hclog level (shared with derived loggers).
func (a *hclogAdapter) SetLevel(level hclog.Level) {
	if level == hclog.NoLevel {
		level = hclog.Trace
	}
	a.level.Store(int32(level))
}

// GetLevel returns the minimum hclog level.
func (a *hclogAdapter) GetLevel() hclog.Level { return hclog.Level(a.level.Load()) }

// StandardLogger returns a *log.Logger that writes through this logger.
func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

// StandardWriter returns an io.Writer that logs each line written to it. With
// InferLevels, a leading "[DEBUG]", "[INFO]", "[WARN]", "[ERR]" (and the like)
// picks the level and is removed; InferLevelsWithTimestamp also skips a
// timestamp before it. ForceLevel overrides both.
func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &stdWriter{a: a, opts: *opts}
}

type stdWriter struct {
	a    *hclogAdapter
	opts hclog.StandardLoggerOptions
}

func (w *stdWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\r\n"), []byte{'\n'}) {
		msg := strings.TrimSpace(string(line))
		level := hclog.Info
		if w.opts.InferLevels || w.opts.InferLevelsWithTimestamp {
			level, msg = inferLevel(msg, w.opts.InferLevelsWithTimestamp)
		}
		if w.opts.ForceLevel != hclog.NoLevel {
			level = w.opts.ForceLevel
		}
		w.a.log(level, msg, nil)
	}
	return len(p), nil
}

func inferLevel(msg string, skipTimestamp bool) (hclog.Level, string) {
	s := msg
	if skipTimestamp {
		if i := strings.IndexByte(s, '['); i > 0 {
			s = s[i:]
		}
	}
	for _, m := range []struct {
		prefix string
		level  hclog.Level
	}{
		{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn}, {"[WARNING]", hclog.Warn},
		{"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error},
	} {
		if rest, ok := strings.CutPrefix(s, m.prefix); ok {
			return m.level, strings.TrimSpace(rest)
		}
	}
	return hclog.Info, msg
}
