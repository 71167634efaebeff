package httpapi_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/raftguard/raftguard/httpapi"
)

// openAPIRoutes reads the "METHOD /path" pairs of docs/openapi.yaml. It
// reads the file's layout rather than parsing YAML: under the top-level
// "paths:" key, a path is a key indented by two spaces and an operation a
// method key indented by four.
func openAPIRoutes(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pathRE := regexp.MustCompile(`^  (/[^:\s]*):\s*$`)
	opRE := regexp.MustCompile(`^    (get|put|post|patch|delete|head|options|trace):`)
	var out []string
	inPaths := false
	path := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line != "" && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "#") {
			inPaths = strings.HasPrefix(line, "paths:")
			continue
		}
		if !inPaths {
			continue
		}
		if m := pathRE.FindStringSubmatch(line); m != nil {
			path = m[1]
		} else if m := opRE.FindStringSubmatch(line); m != nil && path != "" {
			out = append(out, strings.ToUpper(m[1])+" "+path)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenAPIListsEveryRoute fails when a route registered in the server is
// missing from docs/openapi.yaml, or the file lists a route the server does
// not have.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	documented := openAPIRoutes(t)
	if len(documented) < 10 {
		t.Fatalf("found only %d operations in docs/openapi.yaml: has its layout changed?", len(documented))
	}
	registered := httpapi.New(httpapi.Config{}).Routes()
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is registered but missing from docs/openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("docs/openapi.yaml lists %q, which the server does not register", d)
		}
	}
}

// TestAPIDocCoversEveryRoute: docs/api.md has a section per route.
func TestAPIDocCoversEveryRoute(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, r := range httpapi.New(httpapi.Config{}).Routes() {
		if !strings.Contains(doc, "### `"+r+"`") {
			t.Errorf("docs/api.md has no section \"### `%s`\"", r)
		}
	}
}
