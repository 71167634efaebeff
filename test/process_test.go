package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"

	"github.com/raftguard/raftguard/httpapi"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// raftguardBinary builds bin/raftguard once per test run, or returns
// RAFTGUARD_TEST_BINARY when set (a binary built beforehand, as make
// test-kernel does for its VM).
func raftguardBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("RAFTGUARD_TEST_BINARY"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "raftguard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "raftguard")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/raftguard").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// proc is one `raftguard server` process started by the test.
type proc struct {
	id   string
	dir  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

type procCluster struct {
	t     *testing.T
	bin   string
	procs map[string]*proc
	mu    sync.Mutex // guards procs' log buffers
}

// newProcCluster returns a cluster of server processes run from bin, none
// started yet. When the test ends it kills those still running and, if the
// test failed, shows their logs.
func newProcCluster(t *testing.T, bin string) *procCluster {
	t.Helper()
	pc := &procCluster{t: t, bin: bin, procs: map[string]*proc{}}
	t.Cleanup(func() {
		for _, p := range pc.procs {
			if p.cmd != nil && p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			for id := range pc.procs {
				t.Logf("--- %s log:\n%s", id, pc.logs(id))
			}
		}
	})
	return pc
}

func (pc *procCluster) start(id string, args ...string) *proc {
	pc.t.Helper()
	p := pc.procs[id]
	if p == nil {
		p = &proc{id: id, dir: filepath.Join(pc.t.TempDir(), id)}
		pc.procs[id] = p
	}
	p.log = &bytes.Buffer{}
	p.cmd = exec.Command(pc.bin, append([]string{"server", "--data-dir", p.dir}, args...)...)
	p.cmd.Stdout = &lockedWriter{mu: &pc.mu, w: p.log}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		pc.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (pc *procCluster) logs(id string) string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.procs[id].log.String()
}

func (pc *procCluster) stop(id string, sig syscall.Signal) {
	pc.t.Helper()
	p := pc.procs[id]
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		pc.t.Fatalf("%s did not exit after %v", id, sig)
	}
}

// cli runs a client command against the node in dir.
func (pc *procCluster) cli(id string, args ...string) (string, error) {
	cmd := exec.Command(pc.bin, append([]string{"--data-dir", pc.procs[id].dir}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (pc *procCluster) status(id string) (httpapi.ClusterStatus, error) {
	var st httpapi.ClusterStatus
	out, err := pc.cli(id, "-o", "json", "cluster", "status")
	if err != nil {
		return st, fmt.Errorf("%v: %s", err, out)
	}
	return st, json.Unmarshal([]byte(out), &st)
}

func poll(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	pollEvery(t, d, 50*time.Millisecond, f)
}

// pollEvery is poll with the given interval between tries.
func pollEvery(t testing.TB, d, interval time.Duration, f func() error) {
	t.Helper()
	testutil.Eventually(t, scaled(d), interval, "condition", f) // a slow machine waits longer (timescale_test.go)
}

// TestProcessesFormClusterAndSurviveLeaderKill runs three real `raftguard
// server --dataplane none` processes on loopback, kills the leader with
// SIGKILL and restarts it from its data dir alone.
func TestProcessesFormClusterAndSurviveLeaderKill(t *testing.T) {
	pc := newProcCluster(t, raftguardBinary(t))
	ports := freePorts(t, 6)
	addr := func(i int) (string, string) {
		return fmt.Sprintf("127.0.0.1:%d", ports[2*i]), fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])
	}
	r1, a1 := addr(0)
	pc.start("n1", "--node-id", "n1", "--raft-addr", r1, "--api-addr", a1, "--dataplane", "none", "--bootstrap", "--vip", "192.0.2.10/24")
	var token string
	poll(t, 10*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(pc.procs["n1"].dir, "join.token"))
		token = strings.TrimSpace(string(b))
		return err
	})
	// The token file is written before the tokens are printed.
	poll(t, 10*time.Second, func() error {
		if !strings.Contains(pc.logs("n1"), token) {
			return errors.New("bootstrap did not print the join token")
		}
		return nil
	})
	for i, id := range []string{"n2", "n3"} {
		r, a := addr(i + 1)
		pc.start(id, "--node-id", id, "--raft-addr", r, "--api-addr", a, "--dataplane", "none", "--join", a1, "--token", token)
	}
	poll(t, 20*time.Second, func() error {
		st, err := pc.status("n1")
		if err != nil {
			return err
		}
		if len(st.Nodes) != 3 || st.LeaderID != "n1" {
			return fmt.Errorf("status %+v", st)
		}
		for _, n := range st.Nodes {
			if !n.Reachable || n.AppliedIndex == 0 {
				return fmt.Errorf("node %s not ready", n.NodeID)
			}
		}
		return nil
	})
	if out, err := pc.cli("n2", "peer", "add", "laptop"); err != nil || !strings.Contains(out, "[Interface]") {
		t.Fatalf("peer add: %v\n%s", err, out)
	}

	pc.stop("n1", syscall.SIGKILL)
	var newLeader string
	poll(t, 10*time.Second, func() error {
		st, err := pc.status("n2")
		if err != nil {
			return err
		}
		if st.LeaderID == "" || st.LeaderID == "n1" {
			return fmt.Errorf("leader %q", st.LeaderID)
		}
		newLeader = st.LeaderID
		return nil
	})
	t.Logf("new leader after SIGKILL: %s", newLeader)
	if out, err := pc.cli("n3", "peer", "add", "phone"); err != nil {
		t.Fatalf("write after leader kill: %v\n%s", err, out)
	}

	// Restart n1 with nothing but its data dir.
	pc.start("n1")
	poll(t, 20*time.Second, func() error {
		out, err := pc.cli("n1", "-o", "json", "peer", "list")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, `"phone"`) || !strings.Contains(out, `"laptop"`) {
			return fmt.Errorf("n1 peers: %s", out)
		}
		st, err := pc.status("n1")
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.NodeID == "n1" && n.Role != "follower" {
				return fmt.Errorf("n1 is %s", n.Role)
			}
		}
		return nil
	})

	// SIGTERM on the leader hands leadership over before exiting.
	pc.stop(newLeader, syscall.SIGTERM)
	if !strings.Contains(pc.logs(newLeader), "handed leadership over") {
		t.Fatalf("leader exited without a handover:\n%s", pc.logs(newLeader))
	}
}
