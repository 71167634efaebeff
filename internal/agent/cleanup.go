package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/raftguard/raftguard/dataplane"
	"github.com/raftguard/raftguard/firewall"
	"github.com/raftguard/raftguard/vip"
	"github.com/raftguard/raftguard/vip/hook"
)

// claimsFileName records, in the data dir, what this node claims on the
// host: the NIC it puts VIPs on and the VIPs it holds, and its WireGuard
// interface. Each is recorded before it is claimed, so that whatever a
// killed process left behind can be found and removed: by the node itself
// when it starts again (before Raft starts), and by `raftguard cleanup`,
// which the systemd unit runs as ExecStopPost.
const claimsFileName = "claims.json"

// legacyVIPFileName is where versions before the claims file recorded the
// VIPs held; cleanup still reads and removes it.
const legacyVIPFileName = "vips.json"

// claimRecord is the content of claimsFileName.
type claimRecord struct {
	VIPInterface string         `json:"vip_interface,omitempty"`
	VIPs         []netip.Prefix `json:"vips,omitempty"`
	WGInterface  string         `json:"wg_interface,omitempty"`
	// NATTable names the nftables table (package firewall) while this
	// node may hold it.
	NATTable string `json:"nat_table,omitempty"`
	// Hook: the hook mode's acquire ran and its release has not yet.
	Hook *hookClaim `json:"hook,omitempty"`
}

// claims keeps claimsFileName in step with what the node claims.
type claims struct {
	path string

	mu      sync.Mutex // guards rec and written
	rec     claimRecord
	written string // the file's content as last written; "" when unknown or removed
}

// update changes the record with f and writes it (0600) when it changed.
func (c *claims) update(f func(*claimRecord)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.rec)
	b, err := json.Marshal(c.rec)
	if err != nil {
		return err
	}
	if string(b) == c.written {
		return nil
	}
	if err := writeJSONFile(c.path, c.rec); err != nil {
		return fmt.Errorf("record claims: %w", err)
	}
	c.written = string(b)
	return nil
}

// remove deletes the record: nothing is claimed any more.
func (c *claims) remove() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec, c.written = claimRecord{}, ""
	if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ErrDataDirInUse: a raftguard process runs on this data dir.
var ErrDataDirInUse = errors.New("data dir is in use by a running raftguard process")

// Cleanup removes, offline, everything this node's data dir records as
// claimed on the host: the VIPs on its VIP interface, its WireGuard
// interface (a kernel WireGuard link outlives a killed process, up and
// keyed), the kernel data plane's source routing (fwmark rules and routing
// table) and source fence (nftables), a stale control socket of the
// userspace one, and the NAT table. It returns what it removed. It is
// idempotent: with nothing left (or no data dir at all) it removes nothing
// and returns no error. It refuses to run while a raftguard process holds
// the data dir.
func Cleanup(dataDir string, log *slog.Logger) ([]string, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(dataDir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing was ever claimed from here
	} else if err != nil {
		return nil, err
	}
	a := &Agent{cfg: Config{DataDir: dataDir}}
	if err := a.prepareDataDir(); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrDataDirInUse, err)
	}
	defer a.lock.Close()
	nf, err := readNodeFile(dataDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if nf == nil {
		nf = &nodeFile{}
	}
	return cleanupLeftovers(dataDir, *nf, log)
}

// cleanupLeftovers removes what the claims record of dataDir (and n, the
// node's settings) name, then the record. The caller holds the data dir's
// lock.
func cleanupLeftovers(dataDir string, n nodeFile, log *slog.Logger) ([]string, error) {
	var rec claimRecord
	recPath := filepath.Join(dataDir, claimsFileName)
	if b, err := os.ReadFile(recPath); err == nil {
		if err := json.Unmarshal(b, &rec); err != nil {
			log.Warn("unreadable claims record: cleaning up what the node's settings name", "file", recPath, "err", err)
			rec = claimRecord{}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	legacyPath := filepath.Join(dataDir, legacyVIPFileName)
	if b, err := os.ReadFile(legacyPath); err == nil {
		var vips []netip.Prefix
		if json.Unmarshal(b, &vips) == nil {
			rec.VIPs = append(rec.VIPs, vips...)
		}
	}

	var removed []string
	var errs []error
	vipIface := rec.VIPInterface
	if vipIface == "" {
		vipIface = n.VIPInterface
	}
	if len(rec.VIPs) > 0 && vipIface != "" {
		r, err := releaseVIPs(vipIface, rec.VIPs)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if rec.Hook != nil {
		timeout := hook.DefaultTimeout
		if n.VIPHookTimeout > 0 {
			timeout = time.Duration(n.VIPHookTimeout)
		}
		r, err := runHookRelease(rec.Hook, timeout, log)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, fmt.Errorf("VIP hook release: %w", err))
		}
	}
	// The recorded interface, and the configured one unless the node runs
	// without a data plane (then a link of that name is not ours).
	var names []string
	if rec.WGInterface != "" {
		names = append(names, rec.WGInterface)
	}
	if n.Dataplane != "none" && n.WGInterface != "" && !slices.Contains(names, n.WGInterface) {
		names = append(names, n.WGInterface)
	}
	for _, name := range names {
		r, err := dataplane.Cleanup(name)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if rec.NATTable != "" {
		r, err := firewall.Cleanup()
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove NAT: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, err
	}
	for _, p := range []string{recPath, legacyPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
	}
	return removed, nil
}

// releaseVIPs removes vips from the interface iface; a missing interface
// holds nothing.
func releaseVIPs(iface string, vips []netip.Prefix) ([]string, error) {
	vm, err := vip.New(iface, nil)
	if errors.Is(err, vip.ErrNoInterface) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("VIP interface %s: %w", iface, err)
	}
	defer vm.Close()
	var removed []string
	for _, v := range vips {
		held, err := vm.Held([]netip.Prefix{v})
		if err != nil {
			return removed, err
		}
		if !held {
			continue
		}
		if _, err := vm.Release([]netip.Prefix{v}); err != nil {
			return removed, fmt.Errorf("release VIP %v: %w", v, err)
		}
		removed = append(removed, fmt.Sprintf("VIP %v on %s", v, iface))
	}
	return removed, nil
}
