package test

// The runbook, docs/runbook.md, is executable. Each of its command blocks
// is a fenced sh block preceded by a marker,
//
//	<!-- runbook:NAME on=WHERE -->
//
// and the tests below run the blocks of each procedure, in order, in the
// namespace lab: each line with sh inside the namespace of the node WHERE
// names (on=NODE: the node whose id is $NODE; on=member: the first running
// server; on=client: the client host), with the placeholders in the
// environment. A few lines stand for what systemd does on a real server
// (see runbook.exec); `raftguard cluster status` is polled until its table
// shows what the step promises. A block a test needs that is missing, an
// unmarked sh block, or a marked block that no test runs fails the tests.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/netlab"
)

const runbookFile = "../docs/runbook.md"

// runbookBlocks are the blocks of docs/runbook.md, each run by a test below.
var runbookBlocks = []string{
	"maintenance/check", "maintenance/handover", "maintenance/stop", "maintenance/stopped", "maintenance/start",
	"upgrade/check", "upgrade/node", "upgrade/handover",
	"replace/check", "node-remove", "node-add/token", "node-add/start", "node-add/check", "node-stop", "node-wipe",
	"backup", "restore",
	"recover/check", "recover/stop", "recover/recover", "recover/start",
	"join-token/rotate",
	"admin-token/create", "admin-token/use", "admin-token/list", "admin-token/revoke", "admin-token/verify", "node-token",
	"migrate/bootstrap", "migrate/check", "migrate/finish", "migrate/rollback",
}

// ---- parsing ----

// rbBlock is one marked sh block of the runbook.
type rbBlock struct {
	name string
	on   string   // NODE (a placeholder holding a node id), member or client
	line int      // of the marker in runbook.md
	cmds []string // commands; a heredoc or continued line is one command
}

var (
	rbMarker  = regexp.MustCompile(`^<!-- runbook:([a-z0-9/-]+) on=([A-Za-z_]+) -->$`)
	rbHeredoc = regexp.MustCompile(`<<-?'?([A-Za-z_]+)'?\s*$`)
	rbVarUse  = regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)`)
)

// parseRunbook returns the runbook's marked blocks by name. It refuses an
// sh block without a marker, a marker without an sh block, and a name used
// twice.
func parseRunbook(md string) (map[string]*rbBlock, error) {
	blocks := map[string]*rbBlock{}
	lines := strings.Split(md, "\n")
	var marker *rbBlock
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], " \t\r")
		if m := rbMarker.FindStringSubmatch(l); m != nil {
			if marker != nil {
				return nil, fmt.Errorf("line %d: marker %q without an sh block", marker.line, marker.name)
			}
			marker = &rbBlock{name: m[1], on: m[2], line: i + 1}
			continue
		}
		if strings.HasPrefix(l, "<!-- runbook:") {
			return nil, fmt.Errorf("line %d: malformed marker %q (want <!-- runbook:NAME on=WHERE -->)", i+1, l)
		}
		if l == "" {
			continue
		}
		if !strings.HasPrefix(strings.TrimSpace(l), "```") {
			if marker != nil {
				return nil, fmt.Errorf("line %d: marker %q is not followed by an sh block", marker.line, marker.name)
			}
			continue
		}
		// A fence: skip over its block.
		lang := strings.TrimPrefix(strings.TrimSpace(l), "```")
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("line %d: unclosed code block", start+1)
		}
		switch {
		case slices.Contains([]string{"bash", "shell", "console", "zsh"}, lang):
			return nil, fmt.Errorf("line %d: a %s block: put commands in sh blocks, marked for the tests", start+1, lang)
		case lang == "sh" && marker == nil:
			return nil, fmt.Errorf("line %d: sh block without a <!-- runbook:NAME on=WHERE --> marker (every shell block is run by a test)", start+1)
		case lang != "sh" && marker != nil:
			return nil, fmt.Errorf("line %d: marker %q is followed by a %q block, not sh", marker.line, marker.name, lang)
		case marker == nil:
			continue
		}
		if _, dup := blocks[marker.name]; dup {
			return nil, fmt.Errorf("line %d: block %q marked twice", marker.line, marker.name)
		}
		cmds, err := splitCommands(body)
		if err != nil {
			return nil, fmt.Errorf("block %q (line %d): %w", marker.name, marker.line, err)
		}
		if len(cmds) == 0 {
			return nil, fmt.Errorf("block %q (line %d) holds no command", marker.name, marker.line)
		}
		marker.cmds = cmds
		blocks[marker.name] = marker
		marker = nil
	}
	if marker != nil {
		return nil, fmt.Errorf("line %d: marker %q without an sh block", marker.line, marker.name)
	}
	return blocks, nil
}

// splitCommands drops comment and blank lines and joins continued lines and
// heredocs into single commands.
func splitCommands(body []string) ([]string, error) {
	var cmds []string
	for i := 0; i < len(body); i++ {
		l := strings.TrimSpace(body[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for strings.HasSuffix(l, `\`) && i+1 < len(body) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(body[i])
		}
		if m := rbHeredoc.FindStringSubmatch(l); m != nil {
			doc := []string{l}
			for i++; i < len(body) && body[i] != m[1]; i++ {
				doc = append(doc, body[i])
			}
			if i == len(body) {
				return nil, fmt.Errorf("heredoc %s not closed", m[1])
			}
			l = strings.Join(append(doc, m[1]), "\n")
		}
		cmds = append(cmds, l)
	}
	return cmds, nil
}

func loadRunbook(t testing.TB) map[string]*rbBlock {
	t.Helper()
	b, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseRunbook(string(b))
	if err != nil {
		t.Fatalf("%s: %v", runbookFile, err)
	}
	return blocks
}

// TestRunbookDocument checks the runbook's structure without a lab: the
// blocks are exactly runbookBlocks, each of them is run by a test in this
// file, each says where it runs, and each placeholder it uses is explained
// in the runbook's placeholder table.
func TestRunbookDocument(t *testing.T) {
	md, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseRunbook(string(md))
	if err != nil {
		t.Fatalf("%s: %v", runbookFile, err)
	}
	tests, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	run := map[string]bool{}
	for _, f := range tests {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`rb\.run\("([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
			run[m[1]] = true
		}
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `\\$([A-Z][A-Z0-9_]*)` \\|").FindAllStringSubmatch(string(md), -1) {
		documented[m[1]] = true
	}
	for _, name := range runbookBlocks {
		b, ok := blocks[name]
		if !ok {
			t.Errorf("the runbook has no block %q", name)
			continue
		}
		if !run[name] {
			t.Errorf("block %q (line %d) is run by no test", name, b.line)
		}
		if b.on != "member" && b.on != "client" && !documented[b.on] {
			t.Errorf("block %q (line %d): on=%s is neither member, client nor a documented placeholder", name, b.line, b.on)
		}
		for _, c := range b.cmds {
			for _, m := range rbVarUse.FindAllStringSubmatch(c, -1) {
				if !documented[m[1]] {
					t.Errorf("block %q (line %d) uses $%s, which the placeholder table does not explain", name, b.line, m[1])
				}
			}
		}
	}
	for name, b := range blocks {
		if !slices.Contains(runbookBlocks, name) {
			t.Errorf("block %q (line %d) is not in runbookBlocks: add it there and run it in a test", name, b.line)
		}
	}
	for name := range run {
		if _, ok := blocks[name]; !ok {
			t.Errorf("a test runs block %q, which the runbook does not have", name)
		}
	}
}

// ---- running ----

// runbook runs the runbook's blocks in a lab.
type runbook struct {
	t      *testing.T
	lc     *labCluster
	blocks map[string]*rbBlock
	vars   map[string]string
	roots  map[*labServer]string // each node's stand-in for / (etc/default, usr/local/bin)
	// started are the servers the runbook started and has not stopped: one
	// that exits by itself fails the test at the next status check.
	started map[*labServer]bool
}

func newRunbook(t *testing.T, lc *labCluster) *runbook {
	return &runbook{t: t, lc: lc, blocks: loadRunbook(t), vars: map[string]string{},
		roots: map[*labServer]string{}, started: map[*labServer]bool{}}
}

// set gives a placeholder its value, as the operator does in the shell.
func (rb *runbook) set(name, value string) { rb.vars[name] = value }

// Lines the lab runs itself, standing in for systemd on a real server.
var (
	rbStop   = regexp.MustCompile(`^systemctl (stop|disable --now) raftguard$`)
	rbStart  = regexp.MustCompile(`^systemctl (start|enable --now) raftguard$`)
	rbStatus = "raftguard cluster status"
)

// run runs a block on the node its marker names and returns the standard
// output of each command. want checks every `raftguard cluster status` of
// the block: the command runs until its table passes want.
func (rb *runbook) run(name string, want func(statusTable) error) []string {
	rb.t.Helper()
	if !slices.Contains(runbookBlocks, name) {
		rb.t.Fatalf("block %q is not listed in runbookBlocks", name)
	}
	b, ok := rb.blocks[name]
	if !ok {
		rb.t.Fatalf("%s has no block %q (<!-- runbook:%s on=... --> before an sh block)", runbookFile, name, name)
	}
	s, h, where := rb.where(b)
	var outs []string
	for _, c := range b.cmds {
		rb.t.Logf("%s [%s] %s $ %s", time.Now().Format("15:04:05.000"), name, where, c)
		outs = append(outs, rb.exec(b, s, h, c, want))
	}
	return outs
}

// where resolves a block's on=.
func (rb *runbook) where(b *rbBlock) (*labServer, *netlab.Host, string) {
	rb.t.Helper()
	switch b.on {
	case "client":
		return nil, rb.lc.client, "client"
	case "member":
		for _, s := range rb.lc.servers {
			if s.proc != nil && !s.proc.Exited() {
				return s, s.host, s.id
			}
		}
		rb.t.Fatalf("block %q: no running member", b.name)
	}
	id, ok := rb.vars[b.on]
	if !ok {
		rb.t.Fatalf("block %q runs on $%s, which the test has not set", b.name, b.on)
	}
	s := rb.lc.server(id)
	return s, s.host, s.id
}

// exec runs one command of block b on server s (nil on the client) in host
// h's namespace. The systemctl lines act on the node's raftguard process as
// systemd would; `raftguard cluster status` runs until want passes; every
// other command runs once with sh and must succeed.
func (rb *runbook) exec(b *rbBlock, s *labServer, h *netlab.Host, c string, want func(statusTable) error) string {
	rb.t.Helper()
	switch {
	case rbStop.MatchString(c) && s != nil:
		if s.proc == nil || s.proc.Exited() {
			rb.t.Fatalf("block %q: %q, but %s is not running", b.name, c, s.id)
		}
		kill(rb.t, s, syscall.SIGTERM)
		delete(rb.started, s)
		// systemd then runs the unit's ExecStopPost.
		if out, err := rb.lc.execStopPost(s); err != nil {
			rb.t.Fatalf("block %q: %q: the unit's ExecStopPost: %v\n%s", b.name, c, err, out)
		}
		return ""
	case rbStart.MatchString(c) && s != nil:
		rb.startServer(s)
		return ""
	case c == rbStatus:
		if want == nil {
			rb.t.Fatalf("block %q checks the cluster status: the test must say what the status must show", b.name)
		}
		return rb.pollStatus(b, s, h, want)
	}
	out, errOut, err := rb.sh(s, h, c)
	if err != nil {
		rb.t.Fatalf("block %q: %s: %v\nstdout:\n%s\nstderr:\n%s", b.name, c, err, out, errOut)
	}
	if text := strings.TrimSpace(out + errOut); text != "" {
		rb.t.Logf("%s", text)
	}
	return out
}

// root is the node's stand-in for / : the files the runbook writes or reads
// outside the data dir go there.
func (rb *runbook) root(s *labServer) string {
	if r, ok := rb.roots[s]; ok {
		return r
	}
	r := rb.t.TempDir()
	for _, d := range []string{"etc/default", "etc/wireguard", "usr/local/bin"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			rb.t.Fatal(err)
		}
	}
	rb.roots[s] = r
	return r
}

// sh runs one command with sh in the host's namespace.
func (rb *runbook) sh(s *labServer, h *netlab.Host, c string) (stdout, stderr string, err error) {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "RAFTGUARD_") || strings.HasPrefix(kv, "PATH=")
	})
	path := filepath.Dir(rb.lc.bin) + ":" + os.Getenv("PATH")
	if s != nil {
		root := rb.root(s)
		c = strings.ReplaceAll(c, "/etc/default/raftguard", filepath.Join(root, "etc/default/raftguard"))
		c = strings.ReplaceAll(c, "/usr/local/bin/raftguard", filepath.Join(root, "usr/local/bin/raftguard"))
		c = strings.ReplaceAll(c, "/etc/wireguard/", filepath.Join(root, "etc/wireguard")+"/")
		path = filepath.Join(root, "usr/local/bin") + ":" + path
		// raftguard's default data dir is /var/lib/raftguard; here it is
		// the node's.
		env = append(env, "DATA_DIR="+s.dir, "RAFTGUARD_DATA_DIR="+s.dir)
	}
	env = append(env, "PATH="+path)
	for k, v := range rb.vars {
		env = append(env, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := h.Command(ctx, "sh", "-c", c)
	cmd.Env = env
	cmd.WaitDelay = time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// startServer does what the unit does: raftguard server --data-dir DIR
// $RAFTGUARD_ARGS, from the node's /usr/local/bin/raftguard when one was
// installed there.
func (rb *runbook) startServer(s *labServer) {
	rb.t.Helper()
	if s.proc != nil && !s.proc.Exited() {
		return // systemctl start of a running unit does nothing
	}
	root := rb.root(s)
	if bin := filepath.Join(root, "usr/local/bin/raftguard"); fileExists(bin) {
		s.bin = bin
	}
	var args []string
	if b, err := os.ReadFile(filepath.Join(root, "etc/default/raftguard")); err == nil {
		args = environmentArgs(string(b))
	}
	rb.lc.start(s, args...)
	rb.started[s] = true
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// environmentArgs reads RAFTGUARD_ARGS from an EnvironmentFile and splits
// it as systemd does for an unquoted $RAFTGUARD_ARGS.
func environmentArgs(file string) []string {
	sc := bufio.NewScanner(strings.NewReader(file))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "RAFTGUARD_ARGS="); ok {
			return strings.Fields(strings.Trim(v, `"'`))
		}
	}
	return nil
}

// pollStatus runs `raftguard cluster status` until its table passes want,
// for up to a minute, as the runbook tells the operator to.
func (rb *runbook) pollStatus(b *rbBlock, s *labServer, h *netlab.Host, want func(statusTable) error) string {
	rb.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, errOut, err := rb.sh(s, h, rbStatus)
		if err == nil {
			st, perr := parseStatus(out)
			if perr != nil {
				rb.t.Fatalf("block %q: cannot read the status table: %v\n%s", b.name, perr, out)
			}
			if err = want(st); err == nil {
				rb.t.Logf("%s", strings.TrimRight(out, "\n"))
				return out
			}
		} else {
			err = fmt.Errorf("%v: %s", err, strings.TrimSpace(errOut))
		}
		for srv := range rb.started {
			if srv.proc.Exited() {
				rb.t.Fatalf("block %q: %s exited with status %d:\n%s", b.name, srv.id, srv.proc.ExitCode(), tail(srv.proc.Output(), 30))
			}
		}
		if time.Now().After(deadline) {
			rb.t.Fatalf("block %q: the status did not show what the runbook promises within a minute: %v\n%s", b.name, err, out)
		}
		time.Sleep(250 * time.Millisecond) // poll interval
	}
}

// ---- the status table, as the operator reads it ----

type statusTable struct {
	Leader, VIPHolder string // "" for -
	Term              uint64
	Rows              []statusRow
}

type statusRow struct {
	Node, Role, Voter, Raft, API string
	Last, Applied                uint64
	VIP                          bool
	Interface, State             string
	Version, Protocol            string
}

var statusHead = regexp.MustCompile(`^leader: (\S+)\s+term: (\d+)\s+VIP holder: (\S+)\s+VIP mode: \S+\s+cluster version: (\d+)$`)

func parseStatus(out string) (statusTable, error) {
	var st statusTable
	lines := strings.Split(strings.TrimSpace(out), "\n")
	m := statusHead.FindStringSubmatch(strings.TrimSpace(lines[0]))
	if m == nil {
		return st, fmt.Errorf("first line %q", lines[0])
	}
	dash := func(s string) string { // "-" stands for none
		if s == "-" {
			return ""
		}
		return s
	}
	st.Leader, st.VIPHolder = dash(m[1]), dash(m[3])
	st.Term, _ = strconv.ParseUint(m[2], 10, 64)
	header := false
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
		case f[0] == "NODE":
			if strings.Join(f, " ") != "NODE ROLE VOTER RAFT API LAST APPLIED VIP INTERFACE VERSION PROTOCOL STATE" {
				return st, fmt.Errorf("columns %q", l)
			}
			header = true
		case !header || len(f) != 12:
			return st, fmt.Errorf("row %q", l)
		default:
			r := statusRow{Node: f[0], Role: f[1], Voter: f[2], Raft: f[3], API: f[4], VIP: f[7] == "yes", Interface: f[8], Version: f[9], Protocol: f[10], State: f[11]}
			r.Last, _ = strconv.ParseUint(f[5], 10, 64)
			r.Applied, _ = strconv.ParseUint(f[6], 10, 64)
			st.Rows = append(st.Rows, r)
		}
	}
	if !header {
		return st, errors.New("no table")
	}
	return st, nil
}

func (st statusTable) row(id string) (statusRow, bool) {
	for _, r := range st.Rows {
		if r.Node == id {
			return r, true
		}
	}
	return statusRow{}, false
}

// serving checks the runbook's "healthy" for an n-node cluster of which the
// nodes down are unreachable: every other row leader or follower, one
// leader that holds the VIP with its interface up, every other reachable
// node with VIP no and interface down, equal APPLIED on the reachable rows.
func serving(n int, down ...string) func(statusTable) error {
	return func(st statusTable) error {
		if len(st.Rows) != n {
			return fmt.Errorf("%d rows, want %d", len(st.Rows), n)
		}
		if st.Leader == "" || st.VIPHolder != st.Leader {
			return fmt.Errorf("leader %q, VIP holder %q", st.Leader, st.VIPHolder)
		}
		var applied uint64
		var state string
		for _, r := range st.Rows {
			if slices.Contains(down, r.Node) {
				if r.Role != "unreachable" {
					return fmt.Errorf("%s is %s, want unreachable", r.Node, r.Role)
				}
				continue
			}
			want := "follower"
			if r.Node == st.Leader {
				want = "leader"
			}
			if r.Role != want {
				return fmt.Errorf("%s is %s, want %s", r.Node, r.Role, want)
			}
			if r.VIP != (r.Role == "leader") || (r.Interface == "up") != (r.Role == "leader") {
				return fmt.Errorf("%s (%s): VIP %v, interface %s", r.Node, r.Role, r.VIP, r.Interface)
			}
			if applied == 0 {
				applied, state = r.Applied, r.State
			}
			if r.Applied == 0 || r.Applied != applied {
				return fmt.Errorf("APPLIED differs: %s at %d, another node at %d", r.Node, r.Applied, applied)
			}
			if r.State == "-" || r.State != state {
				return fmt.Errorf("STATE differs: %s has %s, another node %s", r.Node, r.State, state)
			}
		}
		return nil
	}
}

func healthy(n int) func(statusTable) error { return serving(n) }

// and combines checks.
func and(checks ...func(statusTable) error) func(statusTable) error {
	return func(st statusTable) error {
		for _, c := range checks {
			if err := c(st); err != nil {
				return err
			}
		}
		return nil
	}
}

func leaderIs(id string) func(statusTable) error {
	return func(st statusTable) error {
		if st.Leader != id {
			return fmt.Errorf("leader %q, want %s", st.Leader, id)
		}
		return nil
	}
}

func leaderIsNot(id string) func(statusTable) error {
	return func(st statusTable) error {
		if st.Leader == id {
			return fmt.Errorf("%s still leads", id)
		}
		return nil
	}
}

func followerIs(id string) func(statusTable) error {
	return func(st statusTable) error {
		if r, ok := st.row(id); !ok || r.Role != "follower" {
			return fmt.Errorf("%s is not a follower (%+v)", id, r)
		}
		return nil
	}
}

func noRow(id string) func(statusTable) error {
	return func(st statusTable) error {
		if _, ok := st.row(id); ok {
			return fmt.Errorf("%s still listed", id)
		}
		return nil
	}
}

// ---- lab helpers ----

// memberAPIs lists the API addresses of the running servers.
func (lc *labCluster) memberAPIs() string {
	var out []string
	for _, s := range lc.servers {
		if s.proc != nil && !s.proc.Exited() {
			out = append(out, s.host.IPv4().Addr().String()+":7443")
		}
	}
	return strings.Join(out, ",")
}

// destroy makes a server dead for good: SIGKILL and unplugged, like a
// machine that lost power (its namespace keeps the addresses it had).
func destroy(t testing.TB, s *labServer) {
	t.Helper()
	kill(t, s, syscall.SIGKILL)
	if err := s.host.LinkDown(); err != nil {
		t.Fatal(err)
	}
}

// waitEndpoint waits until the client's endpoint is in the replicated
// state, so that a new leader can greet the client at once. Every running
// node must show it: the leader shows the endpoint its interface sees even
// before it has recorded it (once a second).
func waitEndpoint(t testing.TB, lc *labCluster, peer string) {
	t.Helper()
	for _, s := range lc.servers {
		if s.proc == nil || s.proc.Exited() {
			continue
		}
		poll(t, 15*time.Second, func() error {
			out, err := lc.cli(s, "-o", "json", "peer", "show", peer)
			if err != nil || !strings.Contains(out, `"endpoint": "192.0.2.50:`) {
				return fmt.Errorf("%s: endpoint of %s not recorded yet: %v %s", s.id, peer, err, out)
			}
			return nil
		})
	}
}

// startPinging starts pinging the tunnel server from a client host, waits
// until replies flow, and marks the start of the measurement.
func startPinging(t testing.TB, client *netlab.Host) *netlab.Pinger {
	t.Helper()
	p, err := client.StartPinger(tunnelServer4, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReplies(5, 20*time.Second); err != nil {
		p.Stop()
		t.Fatalf("no ping through the tunnel: %v", err)
	}
	p.Mark()
	return p
}

// stopPinging waits until replies flow (again) and returns the longest gap
// since startPinging.
func stopPinging(t testing.TB, p *netlab.Pinger, name string) time.Duration {
	t.Helper()
	if err := p.WaitReplies(p.Replies()+5, 30*time.Second); err != nil {
		t.Errorf("the client's pings did not flow at the end of the procedure: %v", err)
	}
	r := p.Stop()
	t.Logf("%s: %s", name, r)
	fmt.Printf("FIGURE runbook %s: longest ping gap %v\n", name, r.LongestGap.Round(time.Millisecond))
	return r.LongestGap
}

// nodeVersion is the version a node's daemon reports.
func (lc *labCluster) nodeVersion(ask, of *labServer) string {
	st, err := lc.status(ask)
	if err != nil {
		lc.t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.NodeID == of.id {
			return n.Version
		}
	}
	return ""
}

// buildVersion builds raftguard with another version stamped in: the
// "new release" of the upgrade.
func buildVersion(t *testing.T, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "raftguard")
	b, err := exec.Command("go", "build", "-ldflags", "-X github.com/raftguard/raftguard/internal/version.Version="+version,
		"-o", out, "../cmd/raftguard").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// others returns the servers but s.
func (lc *labCluster) others(s *labServer) []*labServer {
	var out []*labServer
	for _, o := range lc.servers {
		if o != s {
			out = append(out, o)
		}
	}
	return out
}

// ---- 1. planned maintenance of the leader ----

func TestRunbookMaintenance(t *testing.T) {
	lc := newLabCluster(t, 3)
	rb := newRunbook(t, lc)
	lc.addClient(lc.servers[1], "laptop")
	waitEndpoint(t, lc, "laptop")
	node := lc.leader()
	rb.set("NODE", node.id)

	p := startPinging(t, lc.client)
	rb.run("maintenance/check", and(healthy(3), leaderIs(node.id)))
	var newLeader string
	rb.run("maintenance/handover", and(healthy(3), leaderIsNot(node.id), followerIs(node.id), func(st statusTable) error {
		newLeader = st.Leader
		return nil
	}))
	rb.run("maintenance/stop", nil)
	rb.run("maintenance/stopped", and(serving(3, node.id), leaderIs(newLeader)))
	// Step 5, the work, happens here.
	rb.run("maintenance/start", and(healthy(3), followerIs(node.id), leaderIs(newLeader)))
	gap := stopPinging(t, p, "maintenance")
	if gap > 2*time.Second {
		t.Errorf("planned maintenance of the leader cost the client %v of pings, want under 2s", gap)
	}
	if h := lc.vipHolders(); len(h) != 1 || h[0] != newLeader {
		t.Errorf("VIP holders %v, want [%s]", h, newLeader)
	}
}

// ---- 2. rolling upgrade ----

func TestRunbookRollingUpgrade(t *testing.T) {
	const next = "runbook-next"
	newBinary := buildVersion(t, next)
	lc := newLabCluster(t, 3)
	rb := newRunbook(t, lc)
	rb.set("NEW_BINARY", newBinary)
	lc.addClient(lc.servers[0], "laptop")
	waitEndpoint(t, lc, "laptop")
	leader := lc.leader()

	p := startPinging(t, lc.client)
	rb.run("upgrade/check", healthy(3))
	upgrade := func(s *labServer, leader string) {
		t.Helper()
		rb.set("NODE", s.id)
		out := rb.run("upgrade/node", and(healthy(3), leaderIs(leader)))
		if !strings.Contains(out[3], next) {
			t.Errorf("raftguard version on %s after the upgrade: %q", s.id, out[3])
		}
		if !strings.Contains(out[5], `"version": "`+next+`"`) {
			t.Errorf("the status does not show %s on %s:\n%s", next, s.id, out[5])
		}
		if v := lc.nodeVersion(s, s); v != next {
			t.Errorf("%s runs version %q after its upgrade, want %q", s.id, v, next)
		}
	}
	for _, s := range lc.others(leader) {
		upgrade(s, leader.id)
	}
	rb.set("NODE", leader.id)
	var newLeader string
	rb.run("upgrade/handover", and(healthy(3), leaderIsNot(leader.id), followerIs(leader.id), func(st statusTable) error {
		newLeader = st.Leader
		return nil
	}))
	upgrade(leader, newLeader)
	out := rb.run("upgrade/check", healthy(3))
	if n := strings.Count(out[1], `"version": "`+next+`"`); n != 3 {
		t.Errorf("%d nodes on %s after the upgrade, want 3:\n%s", n, next, out[1])
	}
	gap := stopPinging(t, p, "rolling upgrade")
	if gap > 2*time.Second {
		t.Errorf("the rolling upgrade cost the client %v of pings, want under 2s", gap)
	}
}

// ---- 3. membership: replace a dead node, grow to five, remove one ----

// addNode runs the runbook's section 3.2 for a new server.
func addNode(rb *runbook, lc *labCluster, s *labServer, n int) {
	rb.t.Helper()
	out := rb.run("node-add/token", nil)
	rb.set("TOKEN", strings.TrimSpace(out[0]))
	rb.set("MEMBERS", lc.memberAPIs())
	rb.set("NODE", s.id)
	rb.run("node-add/start", nil)
	rb.run("node-add/check", and(healthy(n), followerIs(s.id)))
}

func TestRunbookMembership(t *testing.T) {
	lc := newLabCluster(t, 3)
	rb := newRunbook(t, lc)
	lc.addClient(lc.servers[0], "laptop")
	waitEndpoint(t, lc, "laptop")
	leader := lc.leader()
	dead := lc.others(leader)[1]

	p := startPinging(t, lc.client)
	// 3.1: a follower dies for good and is replaced by s4.
	destroy(t, dead)
	rb.set("NODE", dead.id)
	rb.run("replace/check", serving(3, dead.id))
	rb.run("node-remove", and(healthy(2), noRow(dead.id)))
	addNode(rb, lc, lc.addServer(4), 3)
	// 3.3: a fourth and a fifth node.
	addNode(rb, lc, lc.addServer(5), 4)
	addNode(rb, lc, lc.addServer(6), 5)
	// 3.4: remove a node: the leader, the hardest case.
	gone := lc.leader()
	rb.set("NODE", gone.id)
	rb.run("node-stop", nil)
	rb.run("node-remove", and(healthy(4), noRow(gone.id)))
	rb.run("node-wipe", nil)
	gap := stopPinging(t, p, "membership")
	if gap > 2*time.Second {
		t.Errorf("replacing a node, growing to five and removing the leader cost the client %v of pings, want under 2s", gap)
	}

	if _, err := os.Stat(gone.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the removed node's data dir is still there: %v", err)
	}
	// The removed nodes' own admin tokens went with them.
	out, err := lc.cli(lc.leader(), "-o", "json", "cluster", "admin-token", "list")
	if err != nil {
		t.Fatal(err, out)
	}
	for _, s := range []*labServer{dead, gone} {
		if strings.Contains(out, `"node-`+s.id+`"`) {
			t.Errorf("the admin token of removed node %s is still listed:\n%s", s.id, out)
		}
	}
}

// ---- 4. backup and restore ----

func TestRunbookBackupRestore(t *testing.T) {
	lc := newLabCluster(t, 3)
	rb := newRunbook(t, lc)
	lc.addClient(lc.servers[1], "laptop")
	// A second client machine, whose peer the restore leaves as it was.
	c2, err := lc.lab.AddHost("c2", netip.MustParsePrefix("192.0.2.51/24"), netip.MustParsePrefix("2001:db8::51/64"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := lc.cli(lc.servers[0], "peer", "add", "phone")
	if err != nil {
		t.Fatal(err, conf)
	}
	if _, err := c2.StartWireGuardClient(lc.lab.Name("rgcl"), conf[strings.Index(conf, "# raftguard peer"):]); err != nil {
		t.Fatal(err)
	}
	startPinging(t, lc.client).Stop()
	laptop := peerJSON(t, lc, lc.servers[2], "laptop")

	file := filepath.Join(t.TempDir(), "raftguard-backup.snap")
	rb.set("FILE", file)
	rb.run("backup", nil)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Errorf("snapshot file: mode %v, %d bytes; want 0600 and not empty", fi.Mode().Perm(), fi.Size())
	}

	// After the backup a node joins, laptop's peer is deleted by mistake
	// (its client is cut off), and a peer is added.
	s4 := lc.addServer(4)
	addNode(rb, lc, s4, 4)
	const laterKey = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	if out, err := lc.cli(lc.servers[2], "peer", "rm", "laptop"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := lc.cli(lc.servers[0], "peer", "add", "later", "--public-key", laterKey); err != nil {
		t.Fatal(err, out)
	}
	waitInterfaces(t, lc, func(peers string) error {
		if strings.Contains(peers, laptop.PublicKey) || !strings.Contains(peers, laterKey) {
			return errors.New("the deletion and the addition are not on the interface yet")
		}
		return nil
	})

	cut, err := lc.client.StartPinger(tunnelServer4, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Stop()
	phone := startPinging(t, c2)
	start := time.Now()
	rb.run("restore", healthy(4))
	waitInterfaces(t, lc, func(peers string) error {
		if !strings.Contains(peers, laptop.PublicKey) || strings.Contains(peers, laterKey) {
			return errors.New("the interface does not hold the restored peers")
		}
		return nil
	})
	if err := cut.WaitReplies(cut.Replies()+5, 30*time.Second); err != nil {
		t.Fatalf("the restored peer's client does not get through: %v", err)
	}
	fmt.Printf("FIGURE runbook restore: the deleted peer's client pings again %v after the restore began\n", time.Since(start).Round(time.Millisecond))
	if gap := stopPinging(t, phone, "restore, a client the restore does not change"); gap > 2*time.Second {
		t.Errorf("the restore cost a client whose peer it did not change %v of pings", gap)
	}

	// The node that joined after the backup keeps its own token, as the
	// runbook says (section 4.2).
	poll(t, 10*time.Second, func() error {
		if out, err := lc.cli(s4, "peer", "list"); err != nil {
			return fmt.Errorf("raftguard on %s, which joined after the backup, after the restore: %v\n%s\n"+
				"(the runbook, section 4.2, says it keeps its own token: update it)", s4.id, err, out)
		}
		return nil
	})

	for _, s := range lc.servers {
		got := peerJSON(t, lc, s, "laptop")
		if got.PublicKey != laptop.PublicKey || fmt.Sprint(got.Addresses) != fmt.Sprint(laptop.Addresses) {
			t.Errorf("%s: restored laptop %s %v, want %s %v", s.id, got.PublicKey, got.Addresses, laptop.PublicKey, laptop.Addresses)
		}
		if out, err := lc.cli(s, "-o", "json", "peer", "list"); err != nil || strings.Contains(out, `"later"`) || !strings.Contains(out, `"phone"`) {
			t.Errorf("%s: peers after the restore (want laptop and phone, not later): %v\n%s", s.id, err, out)
		}
	}
}

// peerInfo is what the tests compare of a peer.
type peerInfo struct {
	PublicKey string         `json:"public_key"`
	Addresses []netip.Prefix `json:"addresses"`
}

// peerJSON reads one peer through a node.
func peerJSON(t testing.TB, lc *labCluster, s *labServer, name string) peerInfo {
	t.Helper()
	var v peerInfo
	out, err := lc.cli(s, "-o", "json", "peer", "show", name)
	if err != nil {
		t.Fatalf("%s: peer show %s: %v\n%s", s.id, name, err, out)
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitInterfaces polls until every running server's WireGuard interface
// passes check (given `wg show IFACE peers`).
func waitInterfaces(t testing.TB, lc *labCluster, check func(peers string) error) {
	t.Helper()
	for _, s := range lc.servers {
		if s.proc == nil || s.proc.Exited() {
			continue
		}
		poll(t, 15*time.Second, func() error {
			out, err := s.host.Run(context.Background(), "wg", "show", s.wg, "peers")
			if err != nil {
				return err
			}
			if err := check(out); err != nil {
				return fmt.Errorf("%s: %w", s.id, err)
			}
			return nil
		})
	}
}

// ---- 5. recovering when a majority is lost for good ----

func TestRunbookRecoverLostMajority(t *testing.T) {
	lc := newLabCluster(t, 3)
	rb := newRunbook(t, lc)
	lc.addClient(lc.servers[0], "laptop")
	waitEndpoint(t, lc, "laptop")
	leader := lc.leader()
	rest := lc.others(leader)
	survivor, lost := rest[0], rest[1]

	p := startPinging(t, lc.client)
	defer p.Stop()
	destroy(t, leader)
	destroy(t, lost)
	rb.set("NODE", survivor.id)
	rb.run("recover/check", func(st statusTable) error {
		if st.Leader != "" || st.VIPHolder != "" {
			return fmt.Errorf("leader %q, VIP holder %q", st.Leader, st.VIPHolder)
		}
		for _, r := range st.Rows {
			if r.VIP || r.Interface == "up" {
				return fmt.Errorf("%s holds the VIP or has its interface up", r.Node)
			}
		}
		for _, s := range []*labServer{leader, lost} {
			if r, ok := st.row(s.id); !ok || r.Role != "unreachable" {
				return fmt.Errorf("%s is %+v, want unreachable", s.id, r)
			}
		}
		return nil
	})
	if h := lc.vipHolders(); len(h) != 0 {
		t.Errorf("without a majority, VIP holders %v, want none", h)
	}
	rb.set("SERVERS", survivor.id+"="+survivor.host.IPv4().Addr().String()+":7000")
	rb.run("recover/stop", nil)
	rb.run("recover/recover", nil)
	recovered := time.Now()
	rb.run("recover/start", and(healthy(1), leaderIs(survivor.id)))
	if err := p.WaitReplies(p.Replies()+5, 30*time.Second); err != nil {
		t.Fatalf("the client does not get through the recovered cluster: %v", err)
	}
	back := time.Since(recovered)
	fmt.Printf("FIGURE runbook recover: the client pings again %v after the survivor started\n", back.Round(time.Millisecond))
	if back > 5*time.Second {
		t.Errorf("the client got through %v after the survivor started, want within 5s (the new leader greets it)", back)
	}
	if h := lc.vipHolders(); len(h) != 1 || h[0] != survivor.id {
		t.Errorf("VIP holders %v, want [%s]", h, survivor.id)
	}
	// Step 5: back to three nodes.
	addNode(rb, lc, lc.addServer(4), 2)
	addNode(rb, lc, lc.addServer(5), 3)
	if err := p.WaitReplies(p.Replies()+5, 10*time.Second); err != nil {
		t.Errorf("the client's pings stopped while nodes joined: %v", err)
	}
}

// ---- 6. rotating the join token and the admin tokens ----

func TestRunbookRotateJoinToken(t *testing.T) {
	lc := newLabCluster(t, 3)
	rb := newRunbook(t, lc)
	old, err := lc.cli(lc.servers[2], "cluster", "token")
	if err != nil {
		t.Fatal(err, old)
	}
	old = strings.TrimSpace(old)

	out := rb.run("join-token/rotate", nil)
	rotated, shown := strings.TrimSpace(out[0]), strings.TrimSpace(out[1])
	if rotated == old || !strings.HasPrefix(rotated, "rgjoin1.") || shown != rotated {
		t.Fatalf("rotate printed %q, then token printed %q (old %q)", rotated, shown, old)
	}
	for _, s := range lc.servers {
		poll(t, 10*time.Second, func() error {
			if got, err := lc.cli(s, "cluster", "token"); err != nil || strings.TrimSpace(got) != rotated {
				return fmt.Errorf("%s shows token %q (%v)", s.id, got, err)
			}
			return nil
		})
	}

	// The runbook warns that the bootstrap node's join.token file keeps the
	// old token.
	if got := lc.waitFile(filepath.Join(lc.servers[0].dir, "join.token")); got != old {
		t.Errorf("%s/join.token now follows rotations: update the runbook, section 6.1", lc.servers[0].id)
	}

	// A node trying to join with the old token is refused and exits.
	s4 := lc.addServer(4)
	lc.start(s4, "--join", lc.memberAPIs(), "--token", old)
	select {
	case <-s4.proc.Done():
	case <-time.After(45 * time.Second):
		t.Fatal("a node joining with the old token did not give up")
	}
	if code, log := s4.proc.ExitCode(), s4.proc.Output(); code == 0 || !strings.Contains(log, "join refused: the join token is not valid for this cluster") {
		t.Fatalf("joining with the old token: exit status %d, log:\n%s", code, tail(log, 20))
	}
	// With the current token (section 3.2) it joins.
	addNode(rb, lc, s4, 4)
}

func TestRunbookRotateAdminToken(t *testing.T) {
	lc := newLabCluster(t, 3)
	rb := newRunbook(t, lc)
	first := lc.servers[0] // the bootstrap node: its CLI uses the admin token
	oldToken := lc.waitFile(filepath.Join(first.dir, "admin.token"))
	// The client machine's copy of the CA, and the token it has used so
	// far: the one printed at bootstrap.
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	copyFile(t, filepath.Join(first.dir, "tls", "ca.crt"), caFile)
	api := lc.servers[1].host.IPv4().Addr().String() + ":7443"
	rb.set("API", "https://"+api)
	rb.set("CA_FILE", caFile)
	rb.set("OLD_ADMIN_TOKEN", oldToken)
	if code := apiStatus(t, lc, caFile, api, oldToken); code != "200" {
		t.Fatalf("the bootstrap admin token answers %s before the rotation", code)
	}

	out := rb.run("admin-token/create", nil)
	newToken := strings.TrimSpace(out[0])
	if !strings.HasPrefix(newToken, "rgadm1.") {
		t.Fatalf("admin-token create printed %q on stdout", out[0])
	}
	rb.set("NEW_ADMIN_TOKEN", newToken)
	rb.run("admin-token/use", nil)
	out = rb.run("admin-token/list", nil)
	if !regexp.MustCompile(`(?m)^admin\s+bootstrap`).MatchString(out[0]) {
		t.Fatalf("admin-token list does not show the bootstrap token:\n%s", out[0])
	}
	rb.set("OLD_TOKEN_ID", "admin")
	rb.set("NODE", first.id)
	rb.set("ADMIN_TOKEN", newToken)
	rb.run("node-token", healthy(3))
	if fi, err := os.Stat(filepath.Join(first.dir, "admin.token")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s's admin.token after the replacement has mode %v, want 0600", first.id, fi.Mode().Perm())
	}
	out = rb.run("admin-token/revoke", nil)
	if regexp.MustCompile(`(?m)^admin\s`).MatchString(out[1]) {
		t.Errorf("the revoked token is still listed:\n%s", out[1])
	}
	// The revocation takes effect on each node once that node has applied
	// it, a moment after the leader: every node refuses the old token.
	for _, s := range lc.servers {
		addr := s.host.IPv4().Addr().String() + ":7443"
		poll(t, 10*time.Second, func() error {
			if code := apiStatus(t, lc, caFile, addr, oldToken); code != "401" {
				return fmt.Errorf("%s answers %s to the revoked token, want 401", s.id, code)
			}
			return nil
		})
		if code := apiStatus(t, lc, caFile, addr, newToken); code != "200" {
			t.Errorf("%s answers %s to the new token, want 200", s.id, code)
		}
	}
	rb.run("admin-token/verify", nil)
	for _, s := range lc.servers {
		if out, err := lc.cli(s, "peer", "list"); err != nil {
			t.Errorf("raftguard on %s after the rotation: %v\n%s", s.id, err, out)
		}
	}
}

// apiStatus asks GET /v1/peers with token from the client host and returns
// the HTTP status.
func apiStatus(t testing.TB, lc *labCluster, caFile, api, token string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := lc.client.Command(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caFile,
		"-H", "@-", "https://"+api+"/v1/peers")
	cmd.Stdin = strings.NewReader("Authorization: Bearer " + token + "\n") // not on the command line
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %s: %v", api, err)
	}
	return string(out)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
