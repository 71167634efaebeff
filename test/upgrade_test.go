package test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/pki"
)

// upgradeFrom is the release the upgrade test starts from (version N-1):
// the last commit before the cluster version existed. Its state machine
// rejects unknown fields in commands, so any field a newer node sent it
// too early would split the cluster.
const upgradeFrom = "0200164"

// buildRevision builds raftguard as it was at commit rev, from the
// repository's history, with rev stamped in as the version.
func buildRevision(t *testing.T, rev string) string {
	t.Helper()
	if err := exec.Command("git", "-C", "..", "cat-file", "-e", rev+"^{commit}").Run(); err != nil {
		t.Skipf("commit %s is not in this checkout's history (a shallow clone?): %v", rev, err)
	}
	src := t.TempDir()
	archive := exec.Command("git", "-C", "..", "archive", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", rev, err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("untar %s: %v", rev, err)
	}
	bin := filepath.Join(t.TempDir(), "raftguard-"+rev)
	build := exec.Command("go", "build", "-ldflags", "-X github.com/raftguard/raftguard/internal/version.Version="+rev, "-o", bin, "./cmd/raftguard")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", rev, err, out)
	}
	return bin
}

// loopbackAPI is an admin client of one node's API on loopback.
func loopbackAPI(id, addr string, tc *tls.Config, token string, timeout time.Duration) *nodeAPI {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			d := net.Dialer{Timeout: 2 * time.Second}
			c, err := d.DialContext(ctx, network, a)
			if err != nil {
				err = fmt.Errorf("%w: %v", errNotSent, err)
			}
			return c, err
		},
		TLSClientConfig:     tc.Clone(),
		TLSHandshakeTimeout: 3 * time.Second,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
	return apiOver(id, addr, tr, token, timeout)
}

// TestRollingUpgradeFromPreviousRelease starts three nodes of the previous
// release as real processes on loopback, upgrades them one at a time to
// this build (followers first, the leader last, as the runbook says) under
// the fault suite's write workload, and checks after every step that no
// write was lost and every node holds the same state. A change only this
// build proposes (a settings change) is refused with 409 upgrade_required
// while any node runs the old release, and works once the leader has
// raised the cluster version after the last upgrade.
func TestRollingUpgradeFromPreviousRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the previous release and runs a rolling upgrade")
	}
	oldBin := buildRevision(t, upgradeFrom)
	newBin := raftguardBinary(t)
	pc := newProcCluster(t, oldBin)
	ids := []string{"n1", "n2", "n3"}
	ports := freePorts(t, 6)
	raftAddr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[2*i]) }
	apiAddr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]) }

	pc.start("n1", "--node-id", "n1", "--raft-addr", raftAddr(0), "--api-addr", apiAddr(0), "--dataplane", "none", "--bootstrap", "--vip", "192.0.2.10/24")
	readFile := func(name string) string {
		var s string
		poll(t, 20*time.Second, func() error {
			b, err := os.ReadFile(filepath.Join(pc.procs["n1"].dir, name))
			s = strings.TrimSpace(string(b))
			if err == nil && s == "" {
				err = fmt.Errorf("%s is empty", name)
			}
			return err
		})
		return s
	}
	joinToken, adminToken := readFile("join.token"), readFile("admin.token")
	tc, err := pki.CAClientConfig([]byte(readFile(filepath.Join("tls", pki.CACertFile))))
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids[1:] {
		pc.start(id, "--node-id", id, "--raft-addr", raftAddr(i+1), "--api-addr", apiAddr(i+1), "--dataplane", "none", "--join", apiAddr(0), "--token", joinToken)
	}
	apis := map[string]*nodeAPI{}
	var all []*nodeAPI
	for i, id := range ids {
		apis[id] = loopbackAPI(id, apiAddr(i), tc, adminToken, 8*time.Second)
		all = append(all, apis[id])
	}
	t.Cleanup(func() {
		for _, a := range all {
			a.close()
		}
	})
	nodeStatus := func(id string) (httpapi.NodeStatus, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var st httpapi.NodeStatus
		return st, apis[id].get(ctx, "/v1/node", &st)
	}
	// converged waits until every node has applied the same commands and
	// checks that they hold the same state; it returns the leader.
	converged := func(what string) string {
		t.Helper()
		var leader string
		poll(t, time.Minute, func() error {
			var idx uint64
			var digest string
			leader = ""
			for _, id := range ids {
				st, err := nodeStatus(id)
				if err != nil {
					return err
				}
				if st.Role == "leader" {
					leader = id
				}
				if st.StateDigest == "" || (idx != 0 && st.StateIndex != idx) {
					return fmt.Errorf("%s: %s at state index %d, others at %d", what, id, st.StateIndex, idx)
				}
				if idx != 0 && st.StateDigest != digest {
					t.Fatalf("%s: the replicas diverged: at state index %d, %s has digest %s, another node %s", what, idx, id, st.StateDigest, digest)
				}
				idx, digest = st.StateIndex, st.StateDigest
			}
			if leader == "" {
				return fmt.Errorf("%s: no leader", what)
			}
			return nil
		})
		return leader
	}
	leader := converged("the previous release's cluster")
	if st, err := nodeStatus(leader); err != nil || st.Version != upgradeFrom || st.Protocol != 0 {
		t.Fatalf("the cluster does not run %s: %+v %v", upgradeFrom, st, err)
	}

	// Followers first, then the leader.
	order := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == leader })
	order = append(order, leader)
	settingsChange := map[string]any{"client_dns": []string{"192.0.2.53"}}
	var upgraded []string
	for step, id := range order {
		wl := startWorkload(t, all, workloadConfig{Rate: 30, Workers: 6, Names: 4, Drain: 30 * time.Second, Prefix: fmt.Sprintf("u%d-", step)})
		t.Cleanup(wl.abort)
		waitAcked := func(n int) {
			t.Helper()
			pollEvery(t, time.Minute, 50*time.Millisecond, func() error {
				if got := wl.acked(); got < n {
					return fmt.Errorf("%d writes acknowledged, want %d", got, n)
				}
				return nil
			})
		}
		waitAcked(30)
		pc.stop(id, syscall.SIGTERM) // a leader hands leadership over first
		pc.bin = newBin
		pc.start(id) // nothing but its data dir
		poll(t, time.Minute, func() error {
			st, err := nodeStatus(id)
			if err != nil {
				return err
			}
			if st.Protocol != fsm.ProtocolVersion || (st.Role != "follower" && st.Role != "leader") {
				return fmt.Errorf("%s after its upgrade: protocol %d, role %s", id, st.Protocol, st.Role)
			}
			return nil
		})
		upgraded = append(upgraded, id)
		waitAcked(wl.acked() + 60)
		stats := wl.Stop()
		t.Logf("step %d, %s upgraded: %s", step+1, id, stats)
		for _, v := range stats.Violations {
			t.Errorf("step %d: %s", step+1, v)
		}
		converged(fmt.Sprintf("after upgrading %s", id))
		models := wl.models()
		for _, n := range ids {
			var list struct {
				Peers []httpapi.PeerView `json:"peers"`
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := apis[n].get(ctx, "/v1/peers", &list)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			lost, dup := checkPeers(n, list.Peers, models)
			for _, l := range append(lost, dup...) {
				t.Errorf("step %d: %s", step+1, l)
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		if step < len(order)-1 {
			// Mixed versions: an upgraded node shows every node's protocol
			// and refuses what the old nodes could not apply.
			out, err := pc.cli(id, "-o", "json", "cluster", "status")
			var cs httpapi.ClusterStatus
			if err != nil || json.Unmarshal([]byte(out), &cs) != nil {
				t.Fatalf("cluster status on %s: %v\n%s", id, err, out)
			}
			if cs.ClusterVersion != 1 {
				t.Fatalf("cluster version %d with old nodes in the cluster", cs.ClusterVersion)
			}
			for _, n := range cs.Nodes {
				want := 1
				if slices.Contains(upgraded, n.NodeID) {
					want = fsm.ProtocolVersion
				}
				if n.NodeProtocol() != want {
					t.Errorf("cluster status on %s: %s at protocol %d, want %d", id, n.NodeID, n.NodeProtocol(), want)
				}
			}
			for _, u := range upgraded {
				ans, err := apis[u].call(context.Background(), http.MethodPatch, "/v1/cluster/settings", settingsChange)
				if err != nil || ans.status != http.StatusConflict || ans.code != "upgrade_required" {
					t.Fatalf("settings change on %s with old nodes in the cluster: %v %d %s", u, err, ans.status, ans.body)
				}
			}
		}
		// Free the step's names and routes for the next one.
		for name := range models {
			ans, err := apis[leader].call(context.Background(), http.MethodDelete, "/v1/peers/"+name, nil)
			if err != nil {
				ans, err = apis[id].call(context.Background(), http.MethodDelete, "/v1/peers/"+name, nil)
			}
			if err != nil || (ans.status != http.StatusNoContent && ans.status != http.StatusNotFound) {
				t.Fatalf("delete %s: %v %d %s", name, err, ans.status, ans.body)
			}
		}
		leader = converged(fmt.Sprintf("after step %d's cleanup", step+1))
	}

	// Every node runs this build: the leader raises the cluster version
	// and the settings change goes through, on every node's configs.
	poll(t, 30*time.Second, func() error {
		for _, id := range ids {
			st, err := nodeStatus(id)
			if err != nil {
				return err
			}
			if st.ClusterVersion != fsm.ProtocolVersion {
				return fmt.Errorf("%s: cluster version %d", id, st.ClusterVersion)
			}
		}
		return nil
	})
	if ans, err := apis[ids[0]].call(context.Background(), http.MethodPost, "/v1/peers", map[string]any{"name": "after-upgrade"}); err != nil || ans.status != http.StatusCreated {
		t.Fatalf("create after the upgrade: %v %d %s", err, ans.status, ans.body)
	}
	ans, err := apis[ids[1]].call(context.Background(), http.MethodPatch, "/v1/cluster/settings", settingsChange)
	if err != nil || ans.status != http.StatusOK {
		t.Fatalf("settings change after the upgrade: %v %d %s", err, ans.status, ans.body)
	}
	for _, id := range ids {
		poll(t, 10*time.Second, func() error {
			ans, err := apis[id].call(context.Background(), http.MethodGet, "/v1/peers/after-upgrade/config", nil)
			if err != nil || !strings.Contains(string(ans.body), "DNS = 192.0.2.53") {
				return fmt.Errorf("%s: client config without the new DNS: %v %s", id, err, ans.body)
			}
			return nil
		})
	}
	converged("after the upgrade")
}
