package agent_test

import (
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/agent/agenttest"
)

// TestDataDirPermissionsCluster extends TestDataDirPermissions (one node)
// to a cluster: the bootstrap node and joined nodes (join token, TLS
// material received in the join) take Raft snapshots on demand, a third
// node joins after the log was compacted and so installs the leader's
// snapshot; then every data dir is walked: the SPEC wants the dir and
// every directory in it 0700 and every file 0600. The process umask is 0
// meanwhile, so a file that relies on the umask to drop group and other
// bits shows up.
func TestDataDirPermissionsCluster(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	tuning := agent.RaftTuning{SnapshotThreshold: 4, TrailingLogs: 2}
	tc := agenttest.New(t)
	cfg := tc.Config("n1")
	cfg.Bootstrap = true
	cfg.Cluster = agent.ClusterFlags{VIPs: []string{"192.0.2.10/24", "2001:db8::10/64"}, Pool: "10.96.0.0/12", Pool6: "fd00:99::/64"}
	cfg.Raft = tuning
	n1 := tc.Start(cfg)
	agenttest.Eventually(t, 10*time.Second, func() error {
		if _, ok := n1.State().Node("n1"); !ok {
			return fmt.Errorf("n1 not registered yet")
		}
		return nil
	})
	join := func(id string) *agent.Agent {
		cfg := tc.Config(id)
		cfg.Join = []string{n1.APIAddr()}
		cfg.Token = tc.JoinToken("n1")
		cfg.Raft = tuning
		return tc.Start(cfg)
	}
	n2 := join("n2")

	for i := range 12 {
		st, body, _ := tc.Client("n1").Call("POST", "/v1/peers", map[string]any{"name": fmt.Sprintf("p%d", i)})
		if st != http.StatusCreated {
			t.Fatalf("create p%d: %d %s", i, st, body)
		}
	}
	for _, a := range []*agent.Agent{n1, n2} {
		agenttest.Eventually(t, 10*time.Second, func() error {
			if total, _ := a.State().PeerCounts(); total != 12 {
				return fmt.Errorf("%s has %d peers", a.NodeID(), total)
			}
			return nil
		})
		if err := a.RaftNode().Snapshot(); err != nil {
			t.Fatalf("snapshot on %s: %v", a.NodeID(), err)
		}
	}

	// n3 joins after the leader compacted its log, so it installs the
	// leader's snapshot.
	join("n3")
	agenttest.Eventually(t, 10*time.Second, func() error {
		if total, _ := tc.Nodes["n3"].State().PeerCounts(); total != 12 {
			return fmt.Errorf("n3 has %d peers", total)
		}
		return nil
	})
	for _, id := range []string{"n1", "n2", "n3"} {
		agenttest.Eventually(t, 10*time.Second, func() error {
			if n := len(snapshotFiles(t, tc.Dirs[id])); n == 0 {
				return fmt.Errorf("%s holds no snapshot", id)
			}
			return nil
		})
	}

	for _, id := range []string{"n3", "n2", "n1"} {
		tc.Stop(id)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		checkPrivateTree(t, tc.Dirs[id])
	}
}

// snapshotFiles lists the state files of the Raft snapshots under dir.
func snapshotFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && d.Name() == "state.bin" && !strings.HasSuffix(filepath.Dir(p), ".tmp") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkPrivateTree fails for any directory under root (root included) that
// is not 0700, any file that is not 0600, and anything that is neither. It
// returns the number of files it checked.
func checkPrivateTree(t *testing.T, root string) int {
	t.Helper()
	var dirs int
	var files []string
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		mode := info.Mode()
		switch {
		case mode.IsDir():
			dirs++
			if perm := mode.Perm(); perm != 0o700 {
				t.Errorf("directory %s is %#o, want 0700", rel, perm)
			}
		case mode.IsRegular():
			files = append(files, rel)
			seen[filepath.Base(p)] = true
			if perm := mode.Perm(); perm != 0o600 {
				t.Errorf("file %s is %#o, want 0600", rel, perm)
			}
		default:
			t.Errorf("%s is a %v, want a regular file or directory", rel, mode.Type())
		}
		if mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Errorf("%s has special mode bits %v", rel, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk saw the files that matter, so a pass means something.
	for _, name := range []string{"raft.db", "state.bin", "meta.json"} {
		if !seen[name] {
			t.Errorf("%s: no %s found; the walk proves little", root, name)
		}
	}
	t.Logf("%s: %d directories, %d files: %s", root, dirs, len(files), strings.Join(files, " "))
	return len(files)
}
