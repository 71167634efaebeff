package test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInstallFromFreshClone: a fresh clone of this repository (what is
// committed, nothing else) installs with `make install DESTDIR=...`: the
// binary and the systemd unit land where the unit and the docs say, and
// the unit is the committed one.
func TestInstallFromFreshClone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a fresh clone (skipped with -short)")
	}
	for _, tool := range []string{"git", "make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	top, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git work tree: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "raftguard")
	if out, err := exec.CommandContext(ctx, "git", "clone", "--quiet", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	dest := t.TempDir()
	cmd := exec.CommandContext(ctx, "make", "install", "DESTDIR="+dest)
	cmd.Dir = clone
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install DESTDIR=%s in a fresh clone: %v\n%s", dest, err, out)
	}
	bin := filepath.Join(dest, "usr/local/bin/raftguard")
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatalf("the binary did not land: %v", err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("%s has mode %v, want 0755", bin, fi.Mode().Perm())
	}
	if out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput(); err != nil {
		t.Errorf("installed binary: %v\n%s", err, out)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/raftguard.service"))
	if err != nil {
		t.Fatalf("the unit did not land: %v", err)
	}
	committed, err := os.ReadFile(filepath.Join(clone, "dist/raftguard.service"))
	if err != nil {
		t.Fatal(err)
	}
	if string(unit) != string(committed) {
		t.Errorf("the installed unit differs from dist/raftguard.service")
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/raftguard server", "ExecStopPost=/usr/local/bin/raftguard cleanup", "Restart=always"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the installed unit lacks %q", want)
		}
	}
	// systemd's own check, where systemd-analyze exists (it wants the
	// binaries the unit names: point them at the installed one).
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		local := filepath.Join(t.TempDir(), "raftguard.service")
		if err := os.WriteFile(local, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/raftguard", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.CommandContext(ctx, sa, "verify", local).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}

// TestReadmeQuickstartWithoutRoot runs the README's no-root quickstart as
// written (its data dirs and ports moved to free ones): the last command,
// `cluster status` on the second node, lists all three nodes.
func TestReadmeQuickstartWithoutRoot(t *testing.T) {
	md, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(md), "### Trying it without root")
	if !ok {
		t.Fatal("README.md has no section \"Trying it without root\"")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("the no-root quickstart has no sh block")
	}
	dir := t.TempDir()
	ports := freePorts(t, 6)
	repl := []string{"/tmp/rg", filepath.Join(dir, "rg")}
	for i, p := range []string{"7001", "7002", "7003", "7441", "7442", "7443"} {
		repl = append(repl, "127.0.0.1:"+p, "127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	script := strings.NewReplacer(repl...).Replace(block)
	// bin/raftguard is the binary under test, behind a wrapper that notes
	// the servers' process ids (exec keeps them) for the cleanup.
	pids := filepath.Join(dir, "pids")
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\n[ \"$1\" = server ] && echo $$ >> " + pids + "\nexec " + raftguardBinary(t) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "bin/raftguard"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, _ := os.ReadFile(pids)
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Signal(syscall.SIGKILL)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "RAFTGUARD_") })
	cmd.WaitDelay = time.Second // the servers keep the output pipes open
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		t.Fatalf("the quickstart failed: %v\n%s", err, out.String())
	}
	status := out.String()
	t.Logf("cluster status:\n%s", status)
	for _, n := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(status, n) {
			t.Errorf("the quickstart's cluster status does not list %s", n)
		}
	}
}
