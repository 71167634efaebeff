package test

// This file keeps the import rules of DESIGN.md ("Direction of imports")
// checked by a test rather than by memory. It asks the go command for the
// module's import graph (go list -e -deps -json ./...) once and checks the
// rules against it. Only non-test imports count: a package's tests may use
// whatever they need.
//
// A package the rules name that does not exist fails the test: a rule about
// a package that was renamed or moved would otherwise pass silently.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// raftPkg is the one non-standard package fsm may import (with its own
// dependencies).
const raftPkg = "github.com/hashicorp/raft"

// daemonPkgs are the packages on the server's path. None of them may reach
// os/exec through the module's own code: the server never runs a command
// (SPEC.md, section 5).
var daemonPkgs = []string{
	"fsm",
	"raftnode",
	"dataplane",
	"vip",
	"firewall",
	"httpapi",
	"internal/agent",
	"internal/reconcile",
	"internal/clientconf",
}

// execAllowed are the module directories (relative to the module root, with
// everything beneath them) whose packages may import os/exec: the system
// tests and the demo in the command. Add a directory here only for lab or
// demo code that the server never imports, and say why.
var execAllowed = []string{
	"test",
	"cmd/raftguard",
	// The network-namespace lab of the end-to-end tests and the demo: it
	// runs ip, nft, wg, wireguard-go and ping. The server never imports it.
	"internal/netlab",
	// The VIP hook mode: the operator's own --vip-hook, run directly (no
	// shell), the one exception SPEC section 5 allows on the server.
	"vip/hook",
}

// fsmForbidden are import paths (or path fragments) that the module's code in
// fsm's dependency graph must never import directly. net/http is reachable
// through hashicorp/raft's metrics library, so only direct imports by our own
// packages count for it.
var fsmForbidden = []string{
	"net/http",
	"os/exec",
	"netlink",
	"wgctrl",
	"golang.zx2c4.com/wireguard",
	"mdlayher/ndp",
}

// listedPackage is the part of `go list -json` output these tests use.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *struct {
		Path string
		Main bool
	}
	Imports    []string
	Deps       []string
	Incomplete bool
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

// graph is the module's import graph.
type graph struct {
	root    string // module root directory
	module  string // module path
	pkgs    map[string]*listedPackage
	ordered []*listedPackage // in go list order
}

var (
	graphOnce sync.Once
	graphVal  *graph
	graphSkip string // set when the go command is unusable here
	graphErr  error
)

// loadGraph lists the module once per test binary. It skips the test when
// the go command is not available and fails it when go list fails.
func loadGraph(t *testing.T) *graph {
	t.Helper()
	graphOnce.Do(func() { graphVal, graphSkip, graphErr = listModule() })
	if graphSkip != "" {
		t.Skip(graphSkip)
	}
	if graphErr != nil {
		t.Fatal(graphErr)
	}
	return graphVal
}

func listModule() (*graph, string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, "go command not found in PATH; cannot check import rules", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	run := func(dir string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = dir
		// Check the Linux build: that is where the data plane code lives.
		cmd.Env = append(os.Environ(), "GOOS=linux")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out, nil
	}

	wd, err := os.Getwd()
	if err != nil {
		return nil, "", err
	}
	out, err := run(wd, "env", "GOMOD")
	if err != nil {
		return nil, "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return nil, "", fmt.Errorf("not inside a module (go env GOMOD = %q)", gomod)
	}
	g := &graph{root: filepath.Dir(gomod), pkgs: make(map[string]*listedPackage)}

	out, err = run(g.root, "list", "-m", "-f", "{{.Path}}")
	if err != nil {
		return nil, "", err
	}
	g.module = strings.TrimSpace(string(out))

	// -e: report broken packages (a colleague's file mid-edit) in the
	// output instead of failing the whole listing.
	out, err = run(g.root, "list", "-e", "-deps", "-json", "./...")
	if err != nil && len(out) == 0 {
		return nil, "", err
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listedPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, "", fmt.Errorf("decoding go list output: %w", err)
		}
		g.pkgs[p.ImportPath] = p
		g.ordered = append(g.ordered, p)
	}
	if len(g.ordered) == 0 {
		return nil, "", errors.New("go list returned no packages")
	}
	return g, "", nil
}

// path returns the import path of the module directory rel ("fsm",
// "internal/agent").
func (g *graph) path(rel string) string { return g.module + "/" + rel }

// rel returns an import path relative to the module ("" for the root).
func (g *graph) rel(importPath string) string {
	return strings.TrimPrefix(strings.TrimPrefix(importPath, g.module), "/")
}

// local reports whether importPath belongs to this module.
func (g *graph) local(importPath string) bool {
	return importPath == g.module || strings.HasPrefix(importPath, g.module+"/")
}

// lookup returns the package in module directory rel, and fails the test when
// that directory holds no Go package (renamed or moved: update the rules).
func (g *graph) lookup(t *testing.T, rel string) *listedPackage {
	t.Helper()
	dir := filepath.Join(g.root, filepath.FromSlash(rel))
	if !hasGoFiles(dir) {
		t.Fatalf("package %s, named by the import rules, does not exist: update the rules", rel)
	}
	p, ok := g.pkgs[g.path(rel)]
	if !ok {
		t.Fatalf("package %s, named by the import rules, is not in the module's build for linux", rel)
	}
	logProblems(t, p)
	return p
}

// hasGoFiles reports whether dir holds a non-test .go file.
func hasGoFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			return true
		}
	}
	return false
}

// logProblems notes a package whose listing is incomplete: the rules are
// then checked on what the go command could resolve, and the build itself
// reports the error.
func logProblems(t *testing.T, p *listedPackage) {
	t.Helper()
	if p.Error != nil {
		t.Logf("note: %s: %s", p.ImportPath, p.Error.Err)
	}
	for _, e := range p.DepsErrors {
		t.Logf("note: dependency of %s: %s", p.ImportPath, e.Err)
	}
}

// localClosure returns p and every package of this module that p depends on.
func (g *graph) localClosure(p *listedPackage) []*listedPackage {
	out := []*listedPackage{p}
	for _, d := range p.Deps {
		if q, ok := g.pkgs[d]; ok && g.local(d) {
			out = append(out, q)
		}
	}
	return out
}

// chain returns the shortest import chain from p to target, for messages:
// "a -> b -> target".
func (g *graph) chain(p *listedPackage, target string) string {
	prev := map[string]string{p.ImportPath: ""}
	queue := []string{p.ImportPath}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == target {
			var hops []string
			for at := cur; at != ""; at = prev[at] {
				hops = append(hops, at)
			}
			slices.Reverse(hops)
			return strings.Join(hops, " -> ")
		}
		q, ok := g.pkgs[cur]
		if !ok {
			continue
		}
		for _, imp := range q.Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return p.ImportPath + " -> ... -> " + target
}

// TestFSMImportsOnlyStdAndRaft: fsm imports the standard library and
// hashicorp/raft only (with raft's own dependencies), and none of the
// module's code it pulls in imports net/http, os/exec, netlink, wgctrl or a
// WireGuard implementation.
func TestFSMImportsOnlyStdAndRaft(t *testing.T) {
	g := loadGraph(t)
	fsm := g.lookup(t, "fsm")

	allowed := map[string]bool{raftPkg: true}
	if raft, ok := g.pkgs[raftPkg]; ok {
		for _, d := range raft.Deps {
			allowed[d] = true
		}
	}
	for _, d := range fsm.Deps {
		if allowed[d] || g.local(d) {
			continue
		}
		if p, ok := g.pkgs[d]; ok && p.Standard {
			continue
		}
		t.Errorf("fsm must import only the standard library and %s, but depends on %s (%s)",
			raftPkg, d, g.chain(fsm, d))
	}
	for _, p := range g.localClosure(fsm) {
		for _, imp := range p.Imports {
			for _, bad := range fsmForbidden {
				if imp == bad || strings.Contains(imp, bad) {
					t.Errorf("fsm must never import %s: %s imports %s (%s)",
						bad, p.ImportPath, imp, g.chain(fsm, imp))
				}
			}
		}
	}
}

// TestRaftnodeDoesNotImportFSM: raftnode is handed a raft.FSM; it never
// imports fsm.
func TestRaftnodeDoesNotImportFSM(t *testing.T) {
	g := loadGraph(t)
	rn := g.lookup(t, "raftnode")
	if fsm := g.path("fsm"); slices.Contains(rn.Deps, fsm) {
		t.Errorf("raftnode must not import fsm: %s", g.chain(rn, fsm))
	}
}

// TestDataplaneAndVIPAreIndependent: dataplane, vip and firewall take their
// own small Config values and import neither fsm nor raftnode.
func TestDataplaneAndVIPAreIndependent(t *testing.T) {
	for _, rel := range []string{"dataplane", "vip", "firewall"} {
		t.Run(rel, func(t *testing.T) {
			g := loadGraph(t)
			p := g.lookup(t, rel)
			for _, banned := range []string{"fsm", "raftnode"} {
				if b := g.path(banned); slices.Contains(p.Deps, b) {
					t.Errorf("%s must not import %s: %s", rel, banned, g.chain(p, b))
				}
			}
		})
	}
}

// TestDaemonNeverRunsCommands: no package on the server's path reaches
// os/exec through the module's own code.
func TestDaemonNeverRunsCommands(t *testing.T) {
	for _, rel := range daemonPkgs {
		t.Run(strings.ReplaceAll(rel, "/", "_"), func(t *testing.T) {
			g := loadGraph(t)
			p := g.lookup(t, rel)
			ours := false
			for _, q := range g.localClosure(p) {
				if g.rel(q.ImportPath) == "vip/hook" {
					continue // the operator's --vip-hook: the allowed exception
				}
				if slices.Contains(q.Imports, "os/exec") {
					ours = true
					t.Errorf("%s must not run commands, but %s imports os/exec (%s)",
						rel, q.ImportPath, g.chain(p, "os/exec"))
				}
			}
			if !ours && slices.Contains(p.Deps, "os/exec") {
				// Through a third-party library only: not our code, but
				// worth knowing.
				t.Logf("note: %s reaches os/exec through a dependency: %s", rel, g.chain(p, "os/exec"))
			}
		})
	}
}

// TestOSExecOnlyInTestsAndDemo: across the whole module, only the system
// tests and the command's demo code import os/exec.
func TestOSExecOnlyInTestsAndDemo(t *testing.T) {
	g := loadGraph(t)
	checked := 0
	for _, p := range g.ordered {
		if !g.local(p.ImportPath) {
			continue
		}
		checked++
		if !slices.Contains(p.Imports, "os/exec") {
			continue
		}
		rel := g.rel(p.ImportPath)
		ok := slices.ContainsFunc(execAllowed, func(a string) bool {
			return rel == a || strings.HasPrefix(rel, a+"/")
		})
		if !ok {
			t.Errorf("%s imports os/exec; only %s may (the server never runs a command)",
				p.ImportPath, strings.Join(execAllowed, ", "))
		}
	}
	if checked == 0 {
		t.Fatalf("go list found no packages of module %s", g.module)
	}
}
