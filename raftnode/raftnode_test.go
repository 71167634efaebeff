package raftnode

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftguard/raftguard/internal/pki"
)

func TestClusterFormsAndReplicates(t *testing.T) {
	c := newTestCluster(t, nil)
	c.bootstrap(3)

	l := c.leader()
	servers, err := l.Servers()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range servers {
		if !s.Voter {
			t.Errorf("%s is not a voter", s.ID)
		}
		if s.Addr != c.node(s.ID).Addr() {
			t.Errorf("%s has address %s, want %s", s.ID, s.Addr, c.node(s.ID).Addr())
		}
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"n1", "n2", "n3"}) {
		t.Fatalf("servers = %v", ids)
	}

	want := c.applyN("e", 20)
	c.waitReplicated(want)

	// Every node agrees on the leader.
	lid, laddr := c.leader().Leader()
	for _, n := range c.live() {
		waitFor(t, waitTime, n.id+" to know the leader", func() bool {
			id, addr := n.Leader()
			return id == lid && addr == laddr
		})
		if got, err := n.WaitForLeader(ctxTimeout(t, waitTime)); err != nil || got != lid {
			t.Errorf("%s WaitForLeader = %q, %v; want %q", n.id, got, err, lid)
		}
	}

	// A follower refuses writes with ErrNotLeader.
	for _, f := range c.followers() {
		if _, err := f.Apply([]byte("x")); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Apply on follower %s: err = %v, want ErrNotLeader", f.id, err)
		}
		if f.State() != "follower" {
			t.Errorf("%s state = %q", f.id, f.State())
		}
		if err := f.Barrier(time.Second); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Barrier on follower: err = %v, want ErrNotLeader", err)
		}
		if err := f.Join("zz", "127.0.0.1:1"); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Join on follower: err = %v, want ErrNotLeader", err)
		}
	}

	// The FSM's response comes back, and an error response is the error.
	c.onLeader("apply with response", func(l *testNode) error {
		resp, err := l.Apply([]byte("last"))
		if err == nil && resp.(int) < len(want)+1 {
			t.Errorf("response = %v, want the FSM's entry count", resp)
		}
		return err
	})
	c.onLeader("apply rejected", func(l *testNode) error {
		_, err := l.Apply([]byte("reject"))
		if errors.Is(err, ErrNotLeader) {
			return err
		}
		if !errors.Is(err, errRejected) {
			t.Errorf("rejected command: err = %v, want the FSM's error", err)
		}
		return nil
	})

	l = c.leader()
	if err := l.Barrier(5 * time.Second); err != nil && !errors.Is(err, ErrNotLeader) {
		t.Errorf("Barrier: %v", err)
	}
	st := l.Stats()
	if st.State != "leader" || st.Term == 0 || st.LastIndex == 0 || st.AppliedIndex == 0 || st.CommitIndex == 0 || st.LastContact != 0 {
		t.Errorf("leader stats = %+v", st)
	}
	for _, f := range c.followers() {
		waitFor(t, waitTime, "follower last contact", func() bool { return f.Stats().LastContact > 0 })
	}
}

func TestBootstrapAndConfigErrors(t *testing.T) {
	c := newTestCluster(t, nil)
	n := c.start("n1", "", "")
	if n.HasState() {
		t.Fatal("fresh node has state")
	}
	if err := n.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	if err := n.Bootstrap(); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Fatalf("second Bootstrap: err = %v, want ErrAlreadyBootstrapped", err)
	}
	if _, err := n.WaitForLeader(ctxTimeout(t, waitTime)); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if n.State() != "shutdown" {
		t.Errorf("state after shutdown = %q", n.State())
	}
	if _, err := n.Apply([]byte("x")); !errors.Is(err, ErrShutdown) {
		t.Errorf("Apply after shutdown: err = %v, want ErrShutdown", err)
	}
	n = c.start("n1", n.dir, "")
	if !n.HasState() {
		t.Fatal("restarted node has no state")
	}
	if err := n.Bootstrap(); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Fatalf("Bootstrap with state: err = %v, want ErrAlreadyBootstrapped", err)
	}

	srv, cli := peerTLS(t, c.ca, "x")
	base := Config{NodeID: "x", Dir: t.TempDir(), BindAddr: "127.0.0.1:0", ServerTLS: srv, ClientTLS: cli, FSM: &testFSM{}, Logger: testLogger()}
	for name, mod := range map[string]func(*Config){
		"no id":      func(c *Config) { c.NodeID = "" },
		"no dir":     func(c *Config) { c.Dir = "" },
		"no fsm":     func(c *Config) { c.FSM = nil },
		"no tls":     func(c *Config) { c.ServerTLS = nil },
		"no bind":    func(c *Config) { c.BindAddr = "" },
		"bad lease":  func(c *Config) { c.LeaderLeaseTimeout = time.Second },
		"advertise":  func(c *Config) { c.AdvertiseAddr = "0.0.0.0:7000" },
		"unspec ip":  func(c *Config) { c.BindAddr = "0.0.0.0:0" },
		"no port":    func(c *Config) { c.AdvertiseAddr = "10.0.0.1" },
		"zero port":  func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" },
		"empty host": func(c *Config) { c.AdvertiseAddr = ":7000" },
	} {
		cfg := base
		mod(&cfg)
		n, err := New(cfg)
		if err == nil {
			n.Shutdown()
			t.Errorf("%s: New succeeded", name)
			continue
		}
		if !errors.Is(err, ErrBadConfig) && !errors.Is(err, ErrBadAddress) {
			t.Errorf("%s: err = %v, want ErrBadConfig or ErrBadAddress", name, err)
		}
	}
	// A host name is a fine advertise address.
	cfg := base
	cfg.AdvertiseAddr = "node-x.example:7000"
	nx, err := New(cfg)
	if err != nil {
		t.Fatalf("advertise host name: %v", err)
	}
	if nx.Addr() != "node-x.example:7000" {
		t.Errorf("Addr = %q", nx.Addr())
	}
	nx.Shutdown()
}

func TestLeaderFailover(t *testing.T) {
	c := newTestCluster(t, nil)
	c.bootstrap(3)
	want := c.applyN("before", 10)
	c.waitReplicated(want)

	old := c.leader()
	if err := old.Shutdown(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	nl := c.leader()
	if nl == old {
		t.Fatal("shut-down node still leader")
	}
	t.Logf("new leader %s after %v", nl.id, time.Since(start))
	// The new leader holds every committed entry.
	got, _ := nl.fsm.snapshot()
	if err := nl.Barrier(5 * time.Second); err == nil {
		got, _ = nl.fsm.snapshot()
	}
	if !hasAll(got, want) {
		t.Fatalf("new leader lacks committed entries: %v", got)
	}
	more := c.applyN("after", 5)
	c.waitReplicated(append(want, more...))
}

func TestFollowerRestartCatchesUp(t *testing.T) {
	c := newTestCluster(t, nil)
	c.bootstrap(3)
	want := c.applyN("a", 10)
	c.waitReplicated(want)

	f := c.followers()[0]
	addr := f.ListenAddr()
	if err := f.Shutdown(); err != nil {
		t.Fatal(err)
	}
	want = append(want, c.applyN("b", 10)...)

	r := c.start(f.id, f.dir, addr)
	if !r.HasState() {
		t.Fatal("restarted follower has no state")
	}
	c.waitReplicated(want, r)
	want = append(want, c.applyN("c", 3)...)
	c.waitReplicated(want)
}

func TestSnapshotInstall(t *testing.T) {
	c := newTestCluster(t, func(cfg *Config) {
		cfg.SnapshotThreshold = 16
		cfg.TrailingLogs = 4
		cfg.SnapshotInterval = 50 * time.Millisecond
	})
	c.bootstrap(3)
	want := c.applyN("e", 100)
	c.waitReplicated(want)
	c.onLeader("snapshot", func(l *testNode) error { return l.Snapshot() })

	n4 := c.start("n4", "", "")
	c.join(n4.id, n4.Addr())
	c.waitReplicated(want, n4)
	if _, restores := n4.fsm.snapshot(); restores == 0 {
		t.Fatal("n4 caught up without a snapshot install (Restore never called)")
	}
	more := c.applyN("f", 5)
	c.waitReplicated(append(want, more...))

	// Snapshots written locally and installed from the leader are private.
	// Stop the nodes first: a background snapshot being created is briefly
	// 0755/0644 before Create tightens it (inside the 0700 directory).
	nodes := c.live()
	for _, n := range nodes {
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if files := checkPrivate(t, n.dir); files < 3 {
			t.Errorf("%s: only %d files checked", n.id, files)
		}
		snaps, err := os.ReadDir(filepath.Join(n.dir, "snapshots"))
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps) == 0 {
			t.Errorf("%s has no snapshot", n.id)
		}
	}
}

func TestFilePermissions(t *testing.T) {
	c := newTestCluster(t, nil)
	n := c.start("n1", "", "")
	if err := n.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	c.applyN("e", 5)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatalf("Snapshot with nothing new: %v", err)
	}
	if files := checkPrivate(t, n.dir); files < 3 { // raft.db, meta.json, state.bin
		t.Fatalf("checked only %d files", files)
	}
	// Snapshots left too open (by an older version) are tightened at start.
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	snaps, err := filepath.Glob(filepath.Join(n.dir, "snapshots", "*", "state.bin"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no snapshot state files: %v", err)
	}
	for _, s := range snaps {
		os.Chmod(s, 0o644)
		os.Chmod(filepath.Dir(s), 0o755)
	}
	os.Chmod(n.dir, 0o755)
	n = c.start("n1", n.dir, "")
	checkPrivate(t, n.dir)
}

func TestRemove(t *testing.T) {
	c := newTestCluster(t, nil)
	c.bootstrap(3)
	victim := c.followers()[0]
	if err := victim.Remove("n1"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Remove on follower: err = %v, want ErrNotLeader", err)
	}
	c.onLeader("remove", func(l *testNode) error { return l.Remove(victim.id) })
	c.waitServers(2)
	servers, err := c.leader().Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.ID == victim.id {
			t.Fatalf("%s still in configuration", victim.id)
		}
	}
	// A removed follower is not told (hashicorp/raft only shuts down a
	// removed leader); the operator stops it.
	victim.Shutdown()
	c.drop(victim.id)
	// Removing a non-member is a no-op.
	c.onLeader("remove again", func(l *testNode) error { return l.Remove(victim.id) })
	want := c.applyN("e", 5)
	c.waitReplicated(want)

	// A leader can remove itself: it steps down and shuts down, and the
	// remaining node carries on alone.
	old := c.leader()
	if err := old.Remove(old.id); err != nil && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("leader removing itself: %v", err)
	}
	waitFor(t, waitTime, "removed leader to shut down", func() bool { return old.State() == "shutdown" })
	c.drop(old.id)
	c.waitServers(1)
	want = append(want, c.applyN("f", 3)...)
	c.waitReplicated(want)
}

func TestTransferLeadership(t *testing.T) {
	c := newTestCluster(t, nil)
	c.bootstrap(3)
	subs := map[string]<-chan struct{}{}
	for _, n := range c.nodes {
		subs[n.id] = n.Subscribe()
	}
	unread := c.node("n1").Subscribe() // never read: wake-ups beyond one are dropped

	old := c.leader()
	if err := c.followers()[0].TransferLeadership(""); !errors.Is(err, ErrNotLeader) {
		t.Errorf("transfer on follower: err = %v, want ErrNotLeader", err)
	}
	if err := old.TransferLeadership("nope"); !errors.Is(err, ErrUnknownServer) {
		t.Errorf("transfer to unknown: err = %v, want ErrUnknownServer", err)
	}
	if err := old.TransferLeadership(""); err != nil {
		t.Fatalf("TransferLeadership(\"\"): %v", err)
	}
	nl := c.leader()
	if nl == old {
		t.Fatal("leadership did not move")
	}
	// Everyone was woken.
	for id, ch := range subs {
		select {
		case <-ch:
		case <-time.After(waitTime):
			t.Fatalf("%s was not signalled", id)
		}
	}

	// To a named node.
	var target *testNode
	for _, f := range c.followers() {
		target = f
	}
	c.onLeader("transfer to "+target.id, func(l *testNode) error {
		if l == target {
			return nil
		}
		return l.TransferLeadership(target.id)
	})
	waitFor(t, waitTime, target.id+" to lead", func() bool { return c.leader() == target })
	want := c.applyN("e", 3)
	c.waitReplicated(want)

	// Transfer to itself is a no-op.
	if err := target.TransferLeadership(target.id); err != nil {
		t.Errorf("transfer to self: %v", err)
	}
	if len(unread) != 1 {
		t.Errorf("unread subscriber holds %d wake-ups, want 1", len(unread))
	}
	if c.node("n1").DroppedWakeups() == 0 {
		t.Error("no wake-up was counted as dropped")
	}
}

func TestJoinIdempotenceAndAddressReplacement(t *testing.T) {
	c := newTestCluster(t, nil)
	c.bootstrap(3)
	want := c.applyN("a", 3)
	c.waitReplicated(want)

	// Same ID and address: no configuration change at all.
	l := c.leader()
	before := l.Stats().LastIndex
	f := c.followers()[0]
	if err := l.Join(f.id, f.Addr()); err != nil {
		t.Fatalf("repeated Join: %v", err)
	}
	if after := l.Stats().LastIndex; after != before {
		t.Errorf("repeated Join wrote to the log (%d -> %d)", before, after)
	}

	// Same ID, new address: the entry is updated.
	if err := f.Shutdown(); err != nil {
		t.Fatal(err)
	}
	moved := c.start(f.id, f.dir, "") // new port
	if moved.Addr() == f.Addr() {
		t.Fatal("restarted on the same address")
	}
	c.join(moved.id, moved.Addr())
	servers := c.servers()
	if len(servers) != 3 || servers[moved.id] != moved.Addr() {
		t.Fatalf("servers after address change = %v", servers)
	}
	want = append(want, c.applyN("b", 3)...)
	c.waitReplicated(want)

	// Another ID at a member's address: the old member is removed first.
	var old *testNode
	for _, n := range c.followers() {
		old = n
	}
	addr := old.ListenAddr()
	if err := old.Shutdown(); err != nil {
		t.Fatal(err)
	}
	c.drop(old.id)
	fresh := c.start("n9", "", addr)
	c.join(fresh.id, fresh.Addr())
	servers = c.servers()
	if _, ok := servers[old.id]; ok || len(servers) != 3 || servers["n9"] != addr {
		t.Fatalf("servers after replacement = %v", servers)
	}
	c.waitReplicated(want, fresh)
	want = append(want, c.applyN("c", 3)...)
	c.waitReplicated(want)

	// The leader's own address cannot be taken.
	c.onLeader("join at leader address", func(l *testNode) error {
		err := l.Join("n10", l.Addr())
		if errors.Is(err, ErrNotLeader) {
			return err
		}
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("join at the leader's address: err = %v, want ErrBadAddress", err)
		}
		return nil
	})
}

// servers returns the leader's configuration as id -> address.
func (c *testCluster) servers() map[string]string {
	c.t.Helper()
	out := map[string]string{}
	c.onLeader("servers", func(l *testNode) error {
		s, err := l.Servers()
		for _, sv := range s {
			out[sv.ID] = sv.Addr
		}
		return err
	})
	return out
}

func TestRaftPortRefusesStrangers(t *testing.T) {
	c := newTestCluster(t, nil)
	c.bootstrap(3)
	l := c.leader()
	target := l.ListenAddr()

	// A client that connects and says nothing must not block anyone.
	silent, err := net.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// Plaintext: what a raft RPC without TLS would look like.
	plain, err := net.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	_ = plain.SetDeadline(time.Now().Add(waitTime))
	plain.Write([]byte{0, 0x81, 0xa4, 'T', 'e', 'r', 'm', 1, '\n', '\n'})
	data, err := io.ReadAll(plain)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("plaintext connection was not closed")
	}
	if len(data) > 0 && data[0] != 0x15 { // anything but a TLS alert record
		t.Errorf("plaintext connection got a non-alert answer: %x", data)
	}
	plain.Close()

	// TLS with a certificate from another CA.
	foreign := newTestCA(t)
	fsrv, fcli := peerTLS(t, foreign, "intruder")
	conn, err := tls.Dial("tcp", target, fcli)
	if err == nil {
		// TLS 1.3: the server judges the client certificate after the
		// client's handshake is done; the refusal shows on read.
		_ = conn.SetDeadline(time.Now().Add(waitTime))
		conn.Write([]byte{0})
		if _, err = conn.Read(make([]byte, 1)); err == nil {
			t.Error("foreign-CA client was answered")
		}
		conn.Close()
	}
	// TLS without a client certificate.
	noCert := fcli.Clone()
	noCert.Certificates = nil
	conn, err = tls.Dial("tcp", target, noCert)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(waitTime))
		if _, err = conn.Read(make([]byte, 1)); err == nil {
			t.Error("certificate-less client was answered")
		}
		conn.Close()
	}
	waitFor(t, waitTime, "refusals to be counted", func() bool { return l.RefusedConnections() >= 3 })

	// Dialing a server with a foreign certificate fails at dial time.
	stranger, err := newTLSStreamLayer("127.0.0.1:0", "", fsrv, fcli, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := l.stream.Dial(raft.ServerAddress(stranger.Addr().String()), 5*time.Second); !errors.Is(err, pki.ErrUntrustedPeer) {
		t.Errorf("dial to foreign server: err = %v, want ErrUntrustedPeer", err)
	}

	// The cluster keeps working.
	want := c.applyN("e", 10)
	c.waitReplicated(want)
}

func TestRecoverCluster(t *testing.T) {
	c := newTestCluster(t, nil)
	c.bootstrap(3)
	want := c.applyN("e", 10)
	c.waitReplicated(want)
	for _, n := range c.nodes {
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	// n1 survives alone.
	n1 := c.node("n1")
	addr := n1.ListenAddr()
	if err := RecoverCluster(Config{NodeID: "n1", Dir: n1.dir, FSM: &testFSM{}, Logger: testLogger()},
		[]Server{{ID: "n1", Addr: addr, Voter: true}}); err != nil {
		t.Fatalf("RecoverCluster: %v", err)
	}
	c.nodes = nil
	r := c.start("n1", n1.dir, addr)
	l := c.leader()
	if l != r {
		t.Fatal("recovered node is not the leader")
	}
	servers := c.servers()
	if len(servers) != 1 || servers["n1"] != addr {
		t.Fatalf("servers after recovery = %v", servers)
	}
	c.waitReplicated(want, r)
	more := c.applyN("f", 3)
	c.waitReplicated(append(want, more...), r)

	if err := RecoverCluster(Config{NodeID: "x", Dir: t.TempDir(), FSM: &testFSM{}}, []Server{{ID: "x", Addr: "127.0.0.1:1", Voter: true}}); !errors.Is(err, ErrNoState) {
		t.Errorf("RecoverCluster on an empty dir: err = %v, want ErrNoState", err)
	}
	if err := RecoverCluster(Config{NodeID: "x", Dir: t.TempDir(), FSM: &testFSM{}}, nil); !errors.Is(err, ErrBadConfig) {
		t.Errorf("RecoverCluster without servers: err = %v, want ErrBadConfig", err)
	}
}
