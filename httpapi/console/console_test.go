package console_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/raftguard/raftguard/httpapi/console"
)

func asset(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("assets", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNoMarkupFromStrings keeps the rules the console's safety rests on
// checkable: the script never turns strings into markup or code, and the
// page holds no inline script, style or event handler (the CSP would
// refuse them anyway).
func TestNoMarkupFromStrings(t *testing.T) {
	js := asset(t, "app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setTimeout('", "setInterval(", "javascript:"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	html := asset(t, "index.html")
	if regexp.MustCompile(`(?i)<script(?:\s+[^>]*)?>\s*[^<\s]`).MatchString(html) {
		t.Error("index.html has an inline script")
	}
	if regexp.MustCompile(`(?i)\son[a-z]+\s*=|\sstyle\s*=|<style`).MatchString(html) {
		t.Error("index.html has an inline event handler or style")
	}
	if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).MatchString(html + js + asset(t, "style.css")) {
		t.Error("the console loads something from another host")
	}
}

// TestHandoverWarningFromRunbook: the warning the console shows before a
// leadership handover is the runbook's.
func TestHandoverWarningFromRunbook(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	runbook := strings.Join(strings.Fields(string(b)), " ")
	js := asset(t, "app.js")
	for _, s := range []string{
		"a planned handover (`transfer-leader`, or stopping the leader), about 0.1–0.3 s of lost packets",
		"There is no automatic failback: a node that comes back joins as a follower.",
		"Check that the cluster is healthy before every step.",
	} {
		if !strings.Contains(runbook, s) {
			t.Errorf("docs/runbook.md no longer says %q: update the console's RUNBOOK_HANDOVER_WARNING with it", s)
		}
		if !strings.Contains(js, s) {
			t.Errorf("the console's handover warning lacks the runbook's %q", s)
		}
	}
}

func TestHandler(t *testing.T) {
	h := console.Handler()
	for path, want := range map[string]int{"/": 200, "/assets/app.js": 200, "/assets/style.css": 200, "/assets/icon.svg": 200, "/assets/": 404, "/assets/nope.js": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
		if rec.Header().Get("Content-Security-Policy") != console.ContentSecurityPolicy || rec.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers %v", path, rec.Header())
		}
	}
}
