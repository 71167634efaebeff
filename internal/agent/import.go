package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/wgconf"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// bootstrapImport is what server --bootstrap --import takes over from a
// wg-quick server config: the settings (the file's key pair, listen port
// and pools with the bootstrap flags) and the file's peers. Both are
// checked by fsm's rules before the data dir is touched.
type bootstrapImport struct {
	settings fsm.Settings
	peers    []fsm.AddPeer
}

// loadImport reads and checks the --import file. Its errors never hold a
// key: wgconf reports lines by number, and fsm's key rules do not echo.
func loadImport(c ClusterFlags) (*bootstrapImport, error) {
	conf, err := wgconf.ReadFile(c.Import)
	if err != nil {
		return nil, fmt.Errorf("--import: %w", err)
	}
	fail := func(err error) error { return fmt.Errorf("--import %s: %w", c.Import, err) }
	in := conf.Interface
	if in.PrivateKey == "" {
		return nil, fail(errors.New("the [Interface] section has no PrivateKey"))
	}
	if err := fsm.ValidateKey(in.PrivateKey); err != nil {
		return nil, fail(fmt.Errorf("the file's PrivateKey: %w", err))
	}
	pub, err := wgkey.Public(in.PrivateKey)
	if err != nil {
		return nil, fail(fmt.Errorf("the file's PrivateKey: %w", err))
	}
	pool, pool6, err := fsm.ServerPools(in.Addresses)
	if err != nil {
		return nil, fail(fmt.Errorf("the file's Address: %w", err))
	}
	flags := c
	if c.Pool != "" && c.Pool != pool.String() {
		return nil, fail(fmt.Errorf("--pool %s differs from the pool of the file's Address, %s: leave --pool out", c.Pool, pool))
	}
	flags.Pool = pool.String()
	if pool6.IsValid() {
		if c.Pool6 != "" && c.Pool6 != pool6.String() {
			return nil, fail(fmt.Errorf("--pool6 %s differs from the pool of the file's Address, %s: leave --pool6 out", c.Pool6, pool6))
		}
		flags.Pool6 = pool6.String()
	} else if c.Pool6 != "" {
		return nil, fail(fmt.Errorf("--pool6 %s: the file's Address has no IPv6 address, and the server would take a new one", c.Pool6))
	}
	switch {
	case in.ListenPort != 0 && c.ListenPort != 0 && c.ListenPort != in.ListenPort:
		return nil, fail(fmt.Errorf("--listen-port %d differs from the file's ListenPort %d, which clients connect to", c.ListenPort, in.ListenPort))
	case in.ListenPort != 0:
		flags.ListenPort = in.ListenPort
	case c.ListenPort == 0:
		return nil, fail(errors.New("the file has no ListenPort: give --listen-port with the port its clients connect to"))
	}
	settings, err := settingsFromFlags(flags)
	if err != nil {
		return nil, err
	}
	settings.PrivateKey, settings.PublicKey = in.PrivateKey, pub
	imp := &bootstrapImport{settings: settings}
	// The peers go through the bulk create's own conversion and rules.
	rc := fsm.RouteContext{Pool: settings.Pool, Pool6: settings.Pool6, VIPs: settings.VIPs}
	for i, p := range httpapi.ImportRequest(conf).Peers {
		cmd, err := httpapi.BulkPeer(i, p, rc)
		if err != nil {
			return nil, fail(err)
		}
		imp.peers = append(imp.peers, cmd)
	}
	if len(imp.peers) == 0 {
		if err := fsm.ValidateSettings(&settings); err != nil {
			return nil, fail(fmt.Errorf("cluster settings: %w", err))
		}
	} else if _, err := fsm.CheckImport(settings, fsm.AddPeers{Peers: imp.peers, At: time.Now().UTC()}); err != nil {
		return nil, fail(err)
	}
	if err := fsm.ValidateServerKeyPair(settings.PrivateKey, settings.PublicKey); err != nil {
		return nil, fail(fmt.Errorf("cluster settings: %w", err))
	}
	return imp, nil
}

// checkNodeRoutes checks the imported peers' routes against this node's
// own addresses, known once the node is resolved.
func (imp *bootstrapImport) checkNodeRoutes(self fsm.Node) error {
	rc := fsm.RouteContext{Pool: imp.settings.Pool, Pool6: imp.settings.Pool6, VIPs: imp.settings.VIPs, NodeAddrs: fsm.NodeAddrs([]fsm.Node{self})}
	for i, p := range imp.peers {
		if err := fsm.ValidatePeerRoutes(rc, p.AllowedIPs); err != nil {
			return fmt.Errorf("--import: %w", &fsm.BulkPeerError{Index: i, Name: p.Name, Err: err})
		}
	}
	return nil
}

// finishImport applies the peers a bootstrap with --import stored, in
// entries of fsm.MaxBulkPeers, once the cluster runs a version that has
// the add-peers command. Peers applied before (a retry after a restart)
// are left as they are.
func (a *Agent) finishImport() error {
	path := filepath.Join(a.cfg.DataDir, pendingImportFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var all fsm.AddPeers
	if err := json.Unmarshal(b, &all); err != nil {
		return fmt.Errorf("%s is damaged: %w", path, err)
	}
	if err := a.raiseClusterVersion(); err != nil {
		return err
	}
	if need, have := fsm.CommandSince(fsm.CmdAddPeers), a.state.ClusterVersion(); have < need {
		return fmt.Errorf("importing peers waits for cluster version %d (now %d)", need, have)
	}
	for start := 0; start < len(all.Peers); start += fsm.MaxBulkPeers {
		chunk := fsm.AddPeers{Peers: all.Peers[start:min(start+fsm.MaxBulkPeers, len(all.Peers))], At: all.At}
		if _, err := a.Apply(fsm.CmdAddPeers, chunk); err != nil {
			return fmt.Errorf("import peers %d-%d: %w", start+1, start+len(chunk.Peers), err)
		}
	}
	a.log.Info("peers imported", "peers", len(all.Peers))
	return os.Remove(path)
}
