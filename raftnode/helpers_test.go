package raftnode

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"

	"github.com/hashicorp/raft"

	"github.com/raftguard/raftguard/internal/pki"
)

// errRejected is what testFSM returns for the command "reject".
var errRejected = errors.New("test fsm: rejected")

// testFSM appends every command to a slice; "reject" is refused with an
// error value (not applied).
type testFSM struct {
	mu       sync.Mutex
	entries  []string // guarded by mu
	restores int      // guarded by mu
}

var _ raft.FSM = (*testFSM)(nil)

func (f *testFSM) Apply(l *raft.Log) any {
	if string(l.Data) == "reject" {
		return errRejected
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return len(f.entries)
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &testSnapshot{entries: append([]string(nil), f.entries...)}, nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []string
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	f.restores++
	return nil
}

func (f *testFSM) snapshot() (entries []string, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.entries...), f.restores
}

type testSnapshot struct{ entries []string }

func (s *testSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.entries); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *testSnapshot) Release() {}

// hasAll reports whether want appears in got in order. Extra entries are
// tolerated: a command retried after ErrLeadershipLost may be applied twice.
func hasAll(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func testLogger() *slog.Logger {
	if os.Getenv("RAFTNODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test cluster", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// peerTLS issues a node certificate from ca and returns the peer configs.
func peerTLS(t testing.TB, ca *pki.CA, id string) (server, client *tls.Config) {
	t.Helper()
	keyPEM, key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csr, id, nil, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ident := &pki.Identity{CACertPEM: ca.CertPEM, CertPEM: certPEM, KeyPEM: keyPEM}
	if server, err = ident.PeerServerConfig(); err != nil {
		t.Fatal(err)
	}
	if client, err = ident.PeerClientConfig(); err != nil {
		t.Fatal(err)
	}
	return server, client
}

type testNode struct {
	id  string
	dir string
	fsm *testFSM
	*Node
}

type testCluster struct {
	t     testing.TB
	ca    *pki.CA
	base  string
	mod   func(*Config)
	nodes []*testNode
}

func newTestCluster(t testing.TB, mod func(*Config)) *testCluster {
	return &testCluster{t: t, ca: newTestCA(t), base: t.TempDir(), mod: mod}
}

// start starts node id with a fresh FSM on dir (created under the cluster's
// base when empty) listening on bind ("127.0.0.1:0" when empty).
func (c *testCluster) start(id, dir, bind string) *testNode {
	c.t.Helper()
	if dir == "" {
		dir = filepath.Join(c.base, id)
	}
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	srv, cli := peerTLS(c.t, c.ca, id)
	fsm := &testFSM{}
	cfg := Config{
		NodeID:    id,
		Dir:       dir,
		BindAddr:  bind,
		ServerTLS: srv,
		ClientTLS: cli,
		FSM:       fsm,
		Logger:    testLogger().With("node", id),
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%s): %v", id, err)
	}
	c.t.Cleanup(func() { _ = n.Shutdown() })
	tn := &testNode{id: id, dir: dir, fsm: fsm, Node: n}
	c.replace(tn)
	return tn
}

func (c *testCluster) replace(tn *testNode) {
	for i, o := range c.nodes {
		if o.id == tn.id {
			c.nodes[i] = tn
			return
		}
	}
	c.nodes = append(c.nodes, tn)
}

func (c *testCluster) drop(id string) {
	for i, o := range c.nodes {
		if o.id == id {
			c.nodes = append(c.nodes[:i], c.nodes[i+1:]...)
			return
		}
	}
}

func (c *testCluster) node(id string) *testNode {
	for _, o := range c.nodes {
		if o.id == id {
			return o
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// live returns the nodes that are not shut down.
func (c *testCluster) live() []*testNode {
	var out []*testNode
	for _, n := range c.nodes {
		if n.State() != "shutdown" {
			out = append(out, n)
		}
	}
	return out
}

// bootstrap starts n nodes, bootstraps the first and joins the others.
func (c *testCluster) bootstrap(n int) {
	c.t.Helper()
	first := c.start("n1", "", "")
	if err := first.Bootstrap(); err != nil {
		c.t.Fatalf("Bootstrap: %v", err)
	}
	c.leader()
	for i := 2; i <= n; i++ {
		tn := c.start(fmt.Sprintf("n%d", i), "", "")
		c.join(tn.id, tn.Addr())
	}
	c.waitServers(n)
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, d, 10*time.Millisecond, what, testutil.Holds(cond))
}

const waitTime = 20 * time.Second

// leader polls until a live node is the leader and returns it.
func (c *testCluster) leader() *testNode {
	c.t.Helper()
	var l *testNode
	waitFor(c.t, waitTime, "a leader", func() bool {
		for _, n := range c.live() {
			if n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// onLeader runs op on the current leader, retrying while leadership moves.
func (c *testCluster) onLeader(what string, op func(*testNode) error) {
	c.t.Helper()
	var last error
	waitFor(c.t, waitTime, what, func() bool {
		last = op(c.leader())
		if errors.Is(last, ErrNotLeader) {
			return false
		}
		if last != nil {
			c.t.Fatalf("%s: %v", what, last)
		}
		return true
	})
}

func (c *testCluster) join(id, addr string) {
	c.t.Helper()
	c.onLeader("join "+id, func(l *testNode) error { return l.Join(id, addr) })
}

func (c *testCluster) apply(data string) {
	c.t.Helper()
	c.onLeader("apply "+data, func(l *testNode) error {
		_, err := l.Apply([]byte(data))
		return err
	})
}

// applyN applies n distinct entries with the given prefix and returns them.
func (c *testCluster) applyN(prefix string, n int) []string {
	c.t.Helper()
	var out []string
	for i := range n {
		e := fmt.Sprintf("%s-%d", prefix, i)
		c.apply(e)
		out = append(out, e)
	}
	return out
}

// waitReplicated waits until every given node's FSM holds want in order.
func (c *testCluster) waitReplicated(want []string, nodes ...*testNode) {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.live()
	}
	for _, n := range nodes {
		waitFor(c.t, waitTime, n.id+" to hold all entries", func() bool {
			got, _ := n.fsm.snapshot()
			return hasAll(got, want)
		})
	}
}

func (c *testCluster) waitServers(n int) {
	c.t.Helper()
	waitFor(c.t, waitTime, fmt.Sprintf("%d servers in the configuration", n), func() bool {
		s, err := c.leader().Servers()
		return err == nil && len(s) == n
	})
}

func (c *testCluster) followers() []*testNode {
	l := c.leader()
	var out []*testNode
	for _, n := range c.live() {
		if n != l {
			out = append(out, n)
		}
	}
	return out
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// checkPrivate fails unless dir is 0700 and every file below it is 0600 and
// every directory 0700. It returns how many files it checked.
func checkPrivate(t testing.TB, dir string) int {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
