// Package hetzner is the hetzner VIP mode: the leader assigns the Hetzner
// Cloud floating IPs that hold the VIPs to its own server, through the
// Hetzner Cloud API (github.com/hetznercloud/hcloud-go/v2).
//
// A floating IP is routed to the server it is assigned to; the server must
// also hold the address on its NIC, as Hetzner's documentation asks. That
// local address is the vip.Local the Runner keeps (lease-bounded, as in the
// arp mode); this package only moves the assignment.
//
// Each VIP is found by its address among the project's floating IPs (an
// IPv6 VIP by the floating /64 that holds it). The server is the one the
// node names (--hetzner-server-id) or, without it, the one the metadata
// service answers for (instance-id).
//
// Release leaves the assignment where it is: the API has no conditional
// unassign, and an unassign that ran after the next leader's assign would
// take the address from the new leader. The next leader's assign moves the
// floating IP; the old node no longer holds the local address and answers
// nothing meanwhile.
//
// The API token is read from a node-local file and kept in memory only: it
// never appears in an error, a log line or the replicated state.
package hetzner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/hetznercloud/hcloud-go/v2/hcloud/metadata"

	"github.com/raftguard/raftguard/vip"
)

// Name is the mode's name, as in the cluster setting.
const Name = "hetzner"

// ErrNoToken: the mode has no API token (--hetzner-token-file).
var ErrNoToken = errors.New("hetzner: no API token: give --hetzner-token-file")

// ErrTokenFile: the token file is unusable (unreadable, empty, or readable
// by other users).
var ErrTokenFile = errors.New("hetzner: token file")

// ErrNotFound: no floating IP of the project holds the VIP's address.
var ErrNotFound = errors.New("hetzner: no floating IP of the project holds the address")

// ErrServerID: the server id is neither given nor known to the metadata
// service.
var ErrServerID = errors.New("hetzner: cannot tell this server's id")

// Config configures New.
type Config struct {
	// Token is the API token (a project token with read and write access).
	Token string
	// ServerID is this node's server; 0 asks the metadata service.
	ServerID int64
	// Endpoint is the API's base URL (default hcloud.Endpoint,
	// https://api.hetzner.cloud/v1); MetadataEndpoint the metadata
	// service's (default metadata.Endpoint).
	Endpoint         string
	MetadataEndpoint string
	// HTTPClient makes the requests (default: a client of its own).
	HTTPClient *http.Client
	// RetryBase is the first wait of the SDK's own retries of a
	// rate-limited (429), conflicting or 502/504 request, doubled at each
	// of at most three retries (default 500ms); PollInterval is how often
	// an assign action is polled until it finishes (default 500ms).
	RetryBase    time.Duration
	PollInterval time.Duration
	Log          *slog.Logger
}

// Mode is the hetzner VIP mode.
type Mode struct {
	c     *hcloud.Client
	meta  *metadata.Client
	token string
	log   *slog.Logger

	mu       sync.Mutex // guards serverID
	serverID int64      // 0 until known
}

var _ vip.Mode = (*Mode)(nil)

// New makes the mode; it calls nothing yet.
func New(c Config) (*Mode, error) {
	if strings.TrimSpace(c.Token) == "" {
		return nil, ErrNoToken
	}
	if c.ServerID < 0 {
		return nil, fmt.Errorf("%w: --hetzner-server-id %d is negative", ErrServerID, c.ServerID)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 500 * time.Millisecond
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	opts := []hcloud.ClientOption{
		hcloud.WithToken(c.Token),
		hcloud.WithHTTPClient(c.HTTPClient),
		hcloud.WithApplication("raftguard", ""),
		hcloud.WithRetryOpts(hcloud.RetryOpts{
			BackoffFunc: hcloud.ExponentialBackoffWithOpts(hcloud.ExponentialBackoffOpts{Base: c.RetryBase, Multiplier: 2, Cap: 8 * c.RetryBase, Jitter: true}),
			MaxRetries:  3,
		}),
		hcloud.WithPollOpts(hcloud.PollOpts{BackoffFunc: hcloud.ConstantBackoff(c.PollInterval)}),
	}
	if c.Endpoint != "" {
		opts = append(opts, hcloud.WithEndpoint(c.Endpoint))
	}
	mopts := []metadata.ClientOption{metadata.WithHTTPClient(c.HTTPClient), metadata.WithTimeout(5 * time.Second)}
	if c.MetadataEndpoint != "" {
		mopts = append(mopts, metadata.WithEndpoint(c.MetadataEndpoint))
	}
	return &Mode{
		c:        hcloud.NewClient(opts...),
		meta:     metadata.NewClient(mopts...),
		token:    c.Token,
		log:      c.Log.With("component", "vip", "vip_mode", Name),
		serverID: c.ServerID,
	}, nil
}

// ReadTokenFile reads an API token from path: the first line, trimmed. A
// file that other users may read (any group or other permission bit) is
// refused.
func ReadTokenFile(path string) (string, error) {
	if path == "" {
		return "", ErrNoToken
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%w %s: %v", ErrTokenFile, path, cause(err))
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w %s: mode %04o lets other users read it: chmod 600 it", ErrTokenFile, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w %s: %v", ErrTokenFile, path, cause(err))
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", fmt.Errorf("%w %s: empty", ErrTokenFile, path)
	}
	return tok, nil
}

// Name is "hetzner".
func (m *Mode) Name() string { return Name }

// Acquire assigns the floating IP of each VIP to this server and waits for
// the assign actions to finish. A floating IP already assigned here is
// left alone.
func (m *Mode) Acquire(ctx context.Context, vips []netip.Prefix) (bool, error) {
	sid, err := m.server(ctx)
	if err != nil {
		return false, err
	}
	fips, err := m.find(ctx, vips)
	if err != nil {
		return false, err
	}
	changed := false
	for i, f := range fips {
		if f.Server != nil && f.Server.ID == sid {
			continue
		}
		from := "none"
		if f.Server != nil {
			from = fmt.Sprint(f.Server.ID)
		}
		act, _, err := m.c.FloatingIP.Assign(ctx, f, &hcloud.Server{ID: sid})
		if err != nil {
			return changed, m.errorf("assign floating IP %s (id %d) to server %d: %w", vips[i].Addr(), f.ID, sid, err)
		}
		if err := m.c.Action.WaitFor(ctx, act); err != nil {
			return changed, m.errorf("assign floating IP %s (id %d) to server %d: waiting for action %d: %w", vips[i].Addr(), f.ID, sid, act.ID, err)
		}
		m.log.Info("floating IP assigned to this server", "vip", vips[i].Addr(), "floating_ip_id", f.ID, "server_id", sid, "from_server", from)
		changed = true
	}
	return changed, nil
}

// Release changes nothing in the cloud: the next leader's assign moves the
// floating IP (see the package comment). The Runner has already removed
// the local address.
func (m *Mode) Release(context.Context, []netip.Prefix) (bool, error) { return false, nil }

// Held reports whether every VIP's floating IP is assigned to this server.
func (m *Mode) Held(ctx context.Context, vips []netip.Prefix) (bool, error) {
	sid, err := m.server(ctx)
	if err != nil {
		return false, err
	}
	fips, err := m.find(ctx, vips)
	if err != nil {
		return false, err
	}
	for _, f := range fips {
		if f.Server == nil || f.Server.ID != sid {
			return false, nil
		}
	}
	return true, nil
}

// server returns this node's server id, asking the metadata service once.
func (m *Mode) server(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.serverID != 0 {
		return m.serverID, nil
	}
	id, err := m.meta.InstanceIDWithContext(ctx)
	if err != nil {
		return 0, m.errorf("%w: give --hetzner-server-id, or run on a Hetzner Cloud server (metadata service: %w)", ErrServerID, err)
	}
	if id <= 0 {
		return 0, fmt.Errorf("%w: the metadata service answered id %d", ErrServerID, id)
	}
	m.serverID = id
	m.log.Info("server id from the metadata service", "server_id", id)
	return id, nil
}

// find returns the floating IP of each VIP, in order.
func (m *Mode) find(ctx context.Context, vips []netip.Prefix) ([]*hcloud.FloatingIP, error) {
	all, err := m.c.FloatingIP.All(ctx)
	if err != nil {
		return nil, m.errorf("list floating IPs: %w", err)
	}
	out := make([]*hcloud.FloatingIP, len(vips))
	for i, v := range vips {
		addr := net.IP(v.Addr().AsSlice())
		for _, f := range all {
			if f.IP.Equal(addr) || (f.Network != nil && f.Network.Contains(addr)) {
				out[i] = f
				break
			}
		}
		if out[i] == nil {
			return nil, fmt.Errorf("%w: %s is not one of the project's %d floating IPs (create it, or fix --vip)", ErrNotFound, v.Addr(), len(all))
		}
	}
	return out, nil
}

// errorf is fmt.Errorf with the API token, should it ever appear in an
// error the SDK returns, replaced.
func (m *Mode) errorf(format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	if m.token != "" && strings.Contains(err.Error(), m.token) {
		return redacted{msg: strings.ReplaceAll(err.Error(), m.token, "[token]"), err: err}
	}
	return err
}

// redacted is an error whose text had the token taken out; errors.Is
// still sees the sentinels it wraps.
type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }

func (r redacted) Is(target error) bool {
	return errors.Is(r.err, target)
}

// cause is err without the path an *fs.PathError repeats.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
