package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/httpapi"
)

// TestHookMode: with --vip-mode hook every leader runs the node's
// --vip-hook with acquire for each VIP, and a node that stops leading runs
// it with release; a failing acquire shows in cluster status and is retried
// until it succeeds; `raftguard cleanup` of a killed leader runs release.
func TestHookMode(t *testing.T) {
	needLab(t)
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	hook := filepath.Join(dir, "hook")
	script := `#!/bin/sh
echo "$1 $2 $3" >> ` + calls + `
if [ -e ` + dir + `/fail-$3 ]; then echo "simulated provider error for $2"; exit 1; fi
echo "moved $2 to $3"
`
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	lc := newLabCluster(t, 3, "--vip-hook", hook, "--vip-hook-timeout", "5s")
	leader := lc.leader()
	if out, err := lc.cli(leader, "cluster", "settings", "set", "--vip-mode", "hook"); err != nil || !strings.Contains(out, "hook") {
		t.Fatalf("settings set --vip-mode hook: %v\n%s", err, out)
	}
	held := func(id string) func() error {
		return func() error {
			st, err := lc.status(lc.servers[0])
			if err != nil {
				for _, s := range lc.servers[1:] {
					if st, err = lc.status(s); err == nil {
						break
					}
				}
			}
			if err != nil {
				return err
			}
			for _, n := range st.Nodes {
				if n.NodeID == id && n.VIPMode == "hook" && n.VIPHeld && n.VIPHolder {
					return nil
				}
			}
			return fmt.Errorf("%s does not hold the VIP in hook mode: %+v", id, nodesVIP(st))
		}
	}
	hasCall := func(call string) func() error {
		return func() error {
			b, _ := os.ReadFile(calls)
			if !strings.Contains(string(b), call+"\n") {
				return fmt.Errorf("no %q in hook calls:\n%s", call, b)
			}
			return nil
		}
	}
	poll(t, 20*time.Second, held(leader.id))
	poll(t, 10*time.Second, hasCall("acquire 192.0.2.10 "+leader.id))
	poll(t, 10*time.Second, hasCall("acquire 2001:db8::10 "+leader.id))

	var follower *labServer
	for _, s := range lc.servers {
		if s != leader {
			follower = s
			break
		}
	}
	lc.addClient(follower, "laptop")
	p, err := lc.client.StartPinger(tunnelServer4, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReplies(3, scaled(15*time.Second)); err != nil {
		t.Fatalf("no ping through the tunnel in hook mode: %v", err)
	}
	p.Stop()

	// The next leader's hook fails: the status says so, and it is retried.
	failFile := filepath.Join(dir, "fail-"+follower.id)
	if err := os.WriteFile(failFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := lc.cli(leader, "cluster", "transfer-leader", "--to", follower.id); err != nil {
		t.Fatalf("transfer-leader: %v\n%s", err, out)
	}
	poll(t, 10*time.Second, hasCall("release 192.0.2.10 "+leader.id))
	poll(t, 15*time.Second, func() error {
		out, err := lc.cli(follower, "cluster", "status")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "pending") || !strings.Contains(out, "simulated provider error") && !strings.Contains(out, "exit status 1") {
			return fmt.Errorf("failing hook not shown:\n%s", out)
		}
		return nil
	})
	os.Remove(failFile)
	poll(t, 30*time.Second, held(follower.id))

	// kill -9: the next leader acquires; cleanup of the killed node releases.
	kill(t, follower, syscall.SIGKILL)
	var next *labServer
	poll(t, 20*time.Second, func() error {
		for _, s := range lc.servers {
			if s == follower {
				continue
			}
			if st, err := lc.status(s); err == nil && st.LeaderID != "" && st.LeaderID != follower.id {
				next = lc.server(st.LeaderID)
				return nil
			}
		}
		return fmt.Errorf("no new leader yet")
	})
	poll(t, 20*time.Second, held(next.id))
	poll(t, 10*time.Second, hasCall("acquire 192.0.2.10 "+next.id))
	if out, err := lc.cli(follower, "cleanup"); err != nil || !strings.Contains(out, "release") {
		t.Fatalf("cleanup of the killed leader: %v\n%s", err, out)
	}
	poll(t, 5*time.Second, hasCall("release 192.0.2.10 "+follower.id))
}

func nodesVIP(st httpapi.ClusterStatus) []string {
	var out []string
	for _, n := range st.Nodes {
		out = append(out, fmt.Sprintf("%s holder=%v held=%v mode=%s err=%q", n.NodeID, n.VIPHolder, n.VIPHeld, n.VIPMode, n.VIPError))
	}
	return out
}
