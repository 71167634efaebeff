// Package version holds the build's version and commit, stamped by the
// Makefile with -ldflags -X.
package version

import (
	"fmt"
	"runtime"
)

// Set at build time.
var (
	Version = "dev"
	Commit  = "unknown"
)

// String is the one-line version report.
func String() string {
	return fmt.Sprintf("raftguard %s (commit %s, %s %s/%s)", Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
