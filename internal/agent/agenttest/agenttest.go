// Package agenttest runs real raftguard nodes in one process on loopback for
// tests and benchmarks: real Raft, real bolt stores, real TLS, no data plane.
package agenttest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/agent"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/testutil"
)

// SyncBuffer collects log output from all nodes (for secret scans).
type SyncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Cluster is a set of in-process nodes.
type Cluster struct {
	T      testing.TB
	Logs   *SyncBuffer
	Banner *SyncBuffer
	Nodes  map[string]*agent.Agent
	Dirs   map[string]string
	// LogLevel for the nodes' loggers (default debug, so secret scans see
	// everything).
	LogLevel slog.Level
}

// New returns an empty cluster whose nodes are shut down at the end of the test.
func New(t testing.TB) *Cluster {
	c := &Cluster{T: t, Logs: &SyncBuffer{}, Banner: &SyncBuffer{}, Nodes: map[string]*agent.Agent{}, Dirs: map[string]string{}, LogLevel: slog.LevelDebug}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, a := range c.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				a.Shutdown(ctx)
			}()
		}
		wg.Wait()
	})
	return c
}

// Config is a loopback node config with its own data dir.
func (c *Cluster) Config(id string) agent.Config {
	dir, ok := c.Dirs[id]
	if !ok {
		dir = filepath.Join(c.T.TempDir(), id)
		c.Dirs[id] = dir
	}
	return agent.Config{
		DataDir:   dir,
		NodeID:    id,
		RaftAddr:  "127.0.0.1:0",
		APIAddr:   "127.0.0.1:0",
		Dataplane: "none",
		Logger:    slog.New(slog.NewTextHandler(c.Logs, &slog.HandlerOptions{Level: c.LogLevel})),
		Stderr:    c.Banner,
	}
}

// Start starts a node and waits until it knows a leader.
func (c *Cluster) Start(cfg agent.Config) *agent.Agent {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := agent.Start(ctx, cfg)
	if err != nil {
		c.T.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	c.Nodes[a.NodeID()] = a
	if cfg.DataDir != "" {
		c.Dirs[a.NodeID()] = cfg.DataDir
	}
	if err := a.WaitReady(ctx); err != nil {
		c.T.Fatal(err)
	}
	return a
}

// Bootstrap starts a new cluster on node id (VIP 192.0.2.10/24, an IPv6 pool).
func (c *Cluster) Bootstrap(id string) *agent.Agent {
	cfg := c.Config(id)
	cfg.Bootstrap = true
	cfg.Cluster = agent.ClusterFlags{VIPs: []string{"192.0.2.10/24", "2001:db8::10/64"}, Pool: "10.96.0.0/12", Pool6: "fd00:99::/64"}
	a := c.Start(cfg)
	// The new leader registers itself just after the cluster's first entry.
	Eventually(c.T, 10*time.Second, func() error {
		if _, ok := a.State().Node(id); !ok {
			return fmt.Errorf("%s not registered yet", id)
		}
		return nil
	})
	return a
}

// JoinToken reads the join token from node id's data dir.
func (c *Cluster) JoinToken(id string) string {
	b, err := os.ReadFile(filepath.Join(c.Dirs[id], "join.token"))
	if err != nil {
		c.T.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Join starts node id and joins it through via.
func (c *Cluster) Join(id string, via *agent.Agent, token string) *agent.Agent {
	cfg := c.Config(id)
	cfg.Join = []string{via.APIAddr()}
	cfg.Token = token
	return c.Start(cfg)
}

// Stop shuts a node down and forgets it.
func (c *Cluster) Stop(id string) {
	c.T.Helper()
	if err := c.Nodes[id].Shutdown(context.Background()); err != nil {
		c.T.Fatal(err)
	}
	delete(c.Nodes, id)
}

// Leader returns the node that believes it leads, or nil.
func (c *Cluster) Leader() *agent.Agent {
	for _, a := range c.Nodes {
		if a.IsLeader() {
			return a
		}
	}
	return nil
}

// WaitLeader waits for a leader other than exclude.
func (c *Cluster) WaitLeader(exclude string) *agent.Agent {
	c.T.Helper()
	var l *agent.Agent
	Eventually(c.T, 10*time.Second, func() error {
		for id, a := range c.Nodes {
			if id != exclude && a.IsLeader() {
				l = a
				return nil
			}
		}
		return fmt.Errorf("no leader")
	})
	return l
}

// Three bootstraps n1 and joins n2 and n3 through it.
func Three(t testing.TB) *Cluster {
	c := New(t)
	n1 := c.Bootstrap("n1")
	tok := c.JoinToken("n1")
	c.Join("n2", n1, tok)
	c.Join("n3", n1, tok)
	Eventually(t, 10*time.Second, func() error {
		l := c.Leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		servers, err := l.Servers()
		if err != nil {
			return err
		}
		if len(servers) != 3 {
			return fmt.Errorf("%d servers", len(servers))
		}
		for _, a := range c.Nodes {
			if len(a.State().Nodes()) != 3 {
				return fmt.Errorf("%s knows %d nodes", a.NodeID(), len(a.State().Nodes()))
			}
		}
		return nil
	})
	return c
}

// Eventually polls f until it returns nil or d passes.
func Eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	testutil.Eventually(t, d, 10*time.Millisecond, "condition", f)
}

// Client is an API client for one node, set up from its data dir.
type Client struct {
	apiclient.Client
}

// Client returns an API client for node id.
func (c *Cluster) Client(id string) *Client {
	c.T.Helper()
	info, err := agent.ReadNodeInfo(c.Dirs[id])
	if err != nil {
		c.T.Fatal(err)
	}
	pem, err := os.ReadFile(info.CACertFile)
	if err != nil {
		c.T.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &Client{apiclient.Client{
		Base:  "https://" + info.APIAdvertise,
		Token: info.AdminToken,
		HTTP: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 256,
		}},
	}}
}

// Call sends a request (in may be nil, a []byte sent as is, or a value to
// marshal as JSON) and returns the status, body and headers whatever the
// status. A transport error is status 0 with the error text as body.
func (cl *Client) Call(method, path string, in any) (int, []byte, http.Header) {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	default:
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	resp, err := cl.Send(context.Background(), method, path, nil, body)
	if err != nil {
		return 0, []byte(err.Error()), nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

// ErrorCode is the code of an error answer's body ("" for any other body).
func ErrorCode(body []byte) string { return apiclient.ErrorFrom(0, body).Code }
