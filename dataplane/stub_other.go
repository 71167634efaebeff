//go:build !linux

package dataplane

import "log/slog"

// Open returns ErrUnsupported: the data plane is Linux-only.
func Open(name, kind string, log *slog.Logger) (Device, error) {
	return nil, ErrUnsupported
}

// KernelSupported is false outside Linux.
func KernelSupported() bool { return false }

// Cleanup returns ErrUnsupported: the data plane is Linux-only.
func Cleanup(name string) ([]string, error) { return nil, ErrUnsupported }
