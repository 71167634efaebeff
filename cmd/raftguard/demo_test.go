package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestDemoPackages(t *testing.T) {
	if got := packageList("arp"); slices.Contains(got, "bird2") {
		t.Errorf("arp mode needs %v", got)
	}
	got := packageList("bgp")
	if n := len(slices.DeleteFunc(slices.Clone(got), func(p string) bool { return p != "bird2" })); n != 1 {
		t.Errorf("bgp mode needs %v, want bird2 once", got)
	}
	for _, p := range packageList("arp") {
		if !slices.Contains(got, p) {
			t.Errorf("bgp mode lacks %s: %v", p, got)
		}
	}
}

func TestDemoRejectsVIPMode(t *testing.T) {
	app := newApp()
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	app.ExitErrHandler = func(*cli.Context, error) {}
	err := app.RunContext(context.Background(), []string{"raftguard", "demo", "--vip-mode", "hook"})
	if err == nil || !strings.Contains(err.Error(), "arp or bgp") {
		t.Fatalf("demo --vip-mode hook: %v", err)
	}
}

func TestBirdRoutes(t *testing.T) {
	out := "BIRD 2.0.12 ready.\nTable master4:\n203.0.113.10/32      unicast [s1 02:52:04.963] * (100) [AS65001i]\n\tvia 192.0.2.1 on eth0\n"
	want := "Table master4:\n203.0.113.10/32      unicast [s1 02:52:04.963] * (100) [AS65001i]\n    via 192.0.2.1 on eth0"
	if got := birdRoutes(out); got != want {
		t.Errorf("birdRoutes = %q, want %q", got, want)
	}
}

// TestDemoBIRDConfigInRunbook: docs/runbook.md section 7.2 shows the
// demo's router configuration (its first session; a comment stands for
// the others).
func TestDemoBIRDConfigInRunbook(t *testing.T) {
	md, err := os.ReadFile("../../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(md)
	doc = doc[strings.Index(doc, "### 7.2 BGP mode"):]
	doc = doc[strings.Index(doc, "```text\nlog stderr all;\n")+len("```text\n"):]
	doc = doc[:strings.Index(doc, "```")]
	var shown strings.Builder
	for _, line := range strings.SplitAfter(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			shown.WriteString(line)
		}
	}
	lay := demoLayouts["bgp"]
	var servers []netip.Addr
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		servers = append(servers, netip.MustParseAddr(a))
	}
	conf, err := demoBIRD(lay.router.Addr(), servers).Conf()
	if err != nil {
		t.Fatal(err)
	}
	if first := conf[:strings.Index(conf, "protocol bgp s2 ")]; shown.String() != first {
		t.Errorf("docs/runbook.md shows\n%s\nthe demo's router runs (first session)\n%s", shown.String(), first)
	}
}
