package agent

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/raftnode"
)

// ParseServers parses "ID=HOST:PORT,ID=HOST:PORT" (Raft addresses).
func ParseServers(spec string) ([]raftnode.Server, error) {
	var out []raftnode.Server
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--servers: %q is not ID=HOST:PORT", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--servers: %q: the Raft address must be HOST:PORT", part)
		}
		if seen[id] {
			return nil, fmt.Errorf("--servers: %s given twice", id)
		}
		seen[id] = true
		out = append(out, raftnode.Server{ID: id, Addr: addr, Voter: true})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--servers: give at least one ID=HOST:PORT")
	}
	return out, nil
}

// Recover forces a new Raft configuration on a stopped node's data dir:
// hashicorp/raft's peers.json recovery for the survivors of a lost
// majority. Run it on every survivor with the same servers, then start them.
func Recover(dataDir string, servers []raftnode.Server) error {
	nf, err := readNodeFile(dataDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(dataDir, nodeFileName), err)
	}
	found := false
	for _, s := range servers {
		found = found || s.ID == nf.NodeID
	}
	if !found {
		return fmt.Errorf("--servers must include this node (%s)", nf.NodeID)
	}
	a := &Agent{cfg: Config{DataDir: dataDir}}
	if err := a.prepareDataDir(); err != nil {
		return err // also refuses a data dir in use by a running node
	}
	defer a.lock.Close()
	return raftnode.RecoverCluster(raftnode.Config{
		NodeID: nf.NodeID,
		Dir:    filepath.Join(dataDir, raftDirName),
		FSM:    fsm.New(nil),
	}, servers)
}
