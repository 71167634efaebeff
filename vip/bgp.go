package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
)

// ErrBGP is returned (wrapped) for a BGP configuration or session error.
var ErrBGP = errors.New("vip: bgp")

// BGPNeighbor is one BGP peer (a router).
type BGPNeighbor struct {
	Addr netip.Addr
	ASN  uint32
}

// ParseBGPNeighbor parses ADDR@ASN.
func ParseBGPNeighbor(s string) (BGPNeighbor, error) {
	addr, asn, ok := strings.Cut(strings.TrimSpace(s), "@")
	if !ok {
		return BGPNeighbor{}, fmt.Errorf("%w: neighbor %q: want ADDR@ASN", ErrBGP, s)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return BGPNeighbor{}, fmt.Errorf("%w: neighbor %q: bad address", ErrBGP, s)
	}
	n, err := strconv.ParseUint(asn, 10, 32)
	if err != nil || n == 0 {
		return BGPNeighbor{}, fmt.Errorf("%w: neighbor %q: bad AS number", ErrBGP, s)
	}
	return BGPNeighbor{Addr: a.Unmap(), ASN: uint32(n)}, nil
}

// BGPConfig configures the BGP mode.
type BGPConfig struct {
	ASN       uint32
	RouterID  netip.Addr // IPv4; default: NextHop4
	Neighbors []BGPNeighbor
	// Password is the TCP MD5 password of every session (optional).
	Password string
	// HoldTime of the sessions (default 9s; keepalives every third of it).
	HoldTime time.Duration
	// Term, if set, returns this node's current Raft term. The VIPs are
	// then announced with a MED that falls as the term rises (MaxUint32 -
	// term), so that a router prefers the newest leader's route at once and
	// a stale one (a frozen or cut-off former leader's, kept until the hold
	// time expires) carries no traffic. Routers compare MEDs between
	// routes from the same AS, which all nodes share (--bgp-asn).
	Term func() uint64
	// NextHop4 and NextHop6 are this node's own addresses, announced as the
	// next hop of the VIPs of each family.
	NextHop4, NextHop6 netip.Addr
}

// Check reports whether c is complete.
func (c BGPConfig) Check() error {
	switch {
	case c.ASN == 0:
		return fmt.Errorf("%w: the bgp mode needs --bgp-asn on this node", ErrBGP)
	case len(c.Neighbors) == 0:
		return fmt.Errorf("%w: the bgp mode needs at least one --bgp-neighbor ADDR@ASN on this node", ErrBGP)
	case !c.routerID().Is4():
		return fmt.Errorf("%w: the bgp mode needs --bgp-router-id (an IPv4 address) or an IPv4 --advertise", ErrBGP)
	case c.HoldTime != 0 && (c.HoldTime < 3*time.Second || c.HoldTime > 65535*time.Second):
		return fmt.Errorf("%w: --bgp-hold-time %v is outside 3s-65535s", ErrBGP, c.HoldTime)
	}
	return nil
}

func (c BGPConfig) routerID() netip.Addr {
	if c.RouterID.IsValid() {
		return c.RouterID
	}
	return c.NextHop4
}

// BGP is the bgp mode: an embedded GoBGP speaker with a session to every
// neighbor on every node, so that a new leader only sends an UPDATE. The
// leader announces each VIP as a host route (/32, /128) with its own
// address as next hop; any other node announces nothing. A killed process's
// sessions close with it (the routers withdraw at once); a frozen one's are
// withdrawn when the hold time expires.
type BGP struct {
	cfg BGPConfig
	s   *server.BgpServer
	log *slog.Logger

	mu        sync.Mutex              // guards announced
	announced map[netip.Prefix]uint32 // VIP -> the MED it was announced with
}

var _ Mode = (*BGP)(nil)

// NewBGP starts the speaker and its sessions.
func NewBGP(ctx context.Context, cfg BGPConfig, log *slog.Logger) (*BGP, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "vip", "vip_mode", "bgp")
	if cfg.HoldTime == 0 {
		cfg.HoldTime = 9 * time.Second
	}
	s := server.NewBgpServer(server.LoggerOption(&bgpLogger{log: log}))
	go s.Serve()
	b := &BGP{cfg: cfg, s: s, log: log, announced: map[netip.Prefix]uint32{}}
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: cfg.ASN, RouterId: cfg.routerID().String(), ListenPort: -1, // sessions are dialled out only
	}}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w: start: %v", ErrBGP, err)
	}
	hold := uint64(cfg.HoldTime / time.Second)
	for _, n := range cfg.Neighbors {
		fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
		fam6 := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
		p := &api.Peer{
			Conf: &api.PeerConf{NeighborAddress: n.Addr.String(), PeerAsn: n.ASN, AuthPassword: cfg.Password},
			Timers: &api.Timers{Config: &api.TimersConfig{
				HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: 2, IdleHoldTimeAfterReset: 1,
			}},
			AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}, {Config: &api.AfiSafiConfig{Family: fam6, Enabled: true}}},
		}
		if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			s.Stop()
			return nil, fmt.Errorf("%w: neighbor %v: %v", ErrBGP, n.Addr, err)
		}
	}
	log.Info("BGP speaker started", "asn", cfg.ASN, "router_id", cfg.routerID(), "neighbors", len(cfg.Neighbors), "hold_time", cfg.HoldTime.String())
	return b, nil
}

// Name is "bgp".
func (b *BGP) Name() string { return "bgp" }

// med is the MED of an announcement now (0 without cfg.Term).
func (b *BGP) med() uint32 {
	if b.cfg.Term == nil {
		return 0
	}
	return math.MaxUint32 - uint32(min(b.cfg.Term(), math.MaxUint32-1))
}

func (b *BGP) path(v netip.Prefix, med uint32) (*api.Path, error) {
	a := v.Addr()
	host := netip.PrefixFrom(a, a.BitLen())
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: a.String(), PrefixLen: uint32(host.Bits())})
	if err != nil {
		return nil, err
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0})
	if err != nil {
		return nil, err
	}
	attrs := []*anypb.Any{origin}
	if med != 0 {
		m, err := anypb.New(&api.MultiExitDiscAttribute{Med: med})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, m)
	}
	if a.Is4() {
		if !b.cfg.NextHop4.Is4() {
			return nil, fmt.Errorf("%w: no IPv4 next hop for %v", ErrBGP, v)
		}
		nh, err := anypb.New(&api.NextHopAttribute{NextHop: b.cfg.NextHop4.String()})
		if err != nil {
			return nil, err
		}
		return &api.Path{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Nlri: nlri, Pattrs: append(attrs, nh)}, nil
	}
	if !b.cfg.NextHop6.Is6() {
		return nil, fmt.Errorf("%w: no IPv6 next hop for %v", ErrBGP, v)
	}
	fam := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	mp, err := anypb.New(&api.MpReachNLRIAttribute{Family: fam, NextHops: []string{b.cfg.NextHop6.String()}, Nlris: []*anypb.Any{nlri}})
	if err != nil {
		return nil, err
	}
	return &api.Path{Family: fam, Nlri: nlri, Pattrs: append(attrs, mp)}, nil
}

// Acquire announces each VIP as a host route and returns once a router has
// been sent it (awaitSent), so that what the node does next as the VIPs'
// holder (greeting the clients) finds the route in place: a node that has
// just started may lead before its sessions are up. The context bounds the
// wait; the Runner retries after a failure.
func (b *BGP) Acquire(ctx context.Context, vips []netip.Prefix) (bool, error) {
	before, err := b.sentUpdates(ctx)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrBGP, err)
	}
	b.mu.Lock()
	changed := false
	med := b.med()
	for _, v := range vips {
		if m, ok := b.announced[v]; ok && m == med {
			continue
		}
		// A route announced in an earlier term is replaced (same prefix,
		// new MED).
		p, err := b.path(v, med)
		if err != nil {
			b.mu.Unlock()
			return changed, err
		}
		if _, err := b.s.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
			b.mu.Unlock()
			return changed, fmt.Errorf("%w: announce %v: %v", ErrBGP, v, err)
		}
		b.announced[v] = med
		changed = true
		b.log.Info("announced VIP host route", "vip", v.Addr(), "med", med)
	}
	b.mu.Unlock()
	if !changed {
		before = nil // announced earlier: any session that carries them will do
	}
	return changed, b.awaitSent(ctx, vips, before)
}

// sentUpdates counts, per neighbor, the UPDATE messages sent to it.
func (b *BGP) sentUpdates(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := b.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		out[p.GetState().GetNeighborAddress()] = p.GetState().GetMessages().GetSent().GetUpdate()
	})
	return out, err
}

// awaitSent polls until some established session has every VIP in its
// adj-RIB-out and (with before) has sent an UPDATE since the counts in
// before were taken: the route is on its way to that router.
func (b *BGP) awaitSent(ctx context.Context, vips []netip.Prefix, before map[string]uint64) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		why := "no BGP session is established"
		var peers []*api.Peer
		err := b.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) { peers = append(peers, p) })
		if err != nil {
			why = err.Error()
		}
		for _, p := range peers {
			st := p.GetState()
			if st.GetSessionState() != api.PeerState_ESTABLISHED {
				continue
			}
			addr := st.GetNeighborAddress()
			if before != nil && st.GetMessages().GetSent().GetUpdate() <= before[addr] {
				why = "the announcement is not sent yet"
				continue
			}
			ok, err := b.advertised(ctx, addr, vips)
			if err == nil && ok {
				return nil
			}
			why = "the routes are not in any router's adj-RIB-out yet"
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: VIPs announced, but not sent to any router yet (%s): %w", ErrBGP, why, ctx.Err())
		case <-t.C: // polling interval
		}
	}
}

// advertised reports whether the adj-RIB-out of neighbor holds every VIP.
func (b *BGP) advertised(ctx context.Context, neighbor string, vips []netip.Prefix) (bool, error) {
	for _, v := range vips {
		p, err := b.path(v, 0)
		if err != nil {
			return false, err
		}
		found := false
		err = b.s.ListPath(ctx, &api.ListPathRequest{
			TableType: api.TableType_ADJ_OUT,
			Name:      neighbor,
			Family:    p.Family,
			Prefixes:  []*api.TableLookupPrefix{{Prefix: netip.PrefixFrom(v.Addr(), v.Addr().BitLen()).String()}},
		}, func(*api.Destination) { found = true })
		if err != nil || !found {
			return false, err
		}
	}
	return true, nil
}

// Release withdraws the VIPs' host routes.
func (b *BGP) Release(ctx context.Context, vips []netip.Prefix) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := false
	var errs []error
	for _, v := range vips {
		med, ok := b.announced[v]
		if !ok {
			continue
		}
		p, err := b.path(v, med)
		if err == nil {
			err = b.s.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Path: p})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: withdraw %v: %v", ErrBGP, v, err))
			continue
		}
		delete(b.announced, v)
		changed = true
		b.log.Info("withdrew VIP host route", "vip", v.Addr())
	}
	return changed, errors.Join(errs...)
}

// Held reports whether every VIP is announced (with the current term's MED)
// and at least one session is established (a router can have learned the
// route).
func (b *BGP) Held(ctx context.Context, vips []netip.Prefix) (bool, error) {
	med := b.med()
	b.mu.Lock()
	for _, v := range vips {
		if m, ok := b.announced[v]; !ok || m != med {
			b.mu.Unlock()
			return false, nil
		}
	}
	b.mu.Unlock()
	up, err := b.Established(ctx)
	if err != nil {
		return false, err
	}
	if up == 0 {
		return false, fmt.Errorf("%w: no BGP session is established", ErrBGP)
	}
	return true, nil
}

// Established counts the established sessions.
func (b *BGP) Established(ctx context.Context) (int, error) {
	n := 0
	err := b.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State != nil && p.State.SessionState == api.PeerState_ESTABLISHED {
			n++
		}
	})
	return n, err
}

// Close withdraws everything by closing the sessions and stops the speaker.
func (b *BGP) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.s.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		b.log.Warn("stopping the BGP speaker", "err", err)
	}
	b.s.Stop()
}

// bgpLogger adapts GoBGP's logger to slog (GoBGP's debug output is
// dropped; its fields name peers and states, never the password).
type bgpLogger struct{ log *slog.Logger }

func (l *bgpLogger) attrs(f gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		if strings.Contains(strings.ToLower(k), "password") {
			continue
		}
		out = append(out, k, v)
	}
	return out
}
func (l *bgpLogger) Panic(msg string, f gobgplog.Fields) { l.log.Error(msg, l.attrs(f)...) }
func (l *bgpLogger) Fatal(msg string, f gobgplog.Fields) { l.log.Error(msg, l.attrs(f)...) }
func (l *bgpLogger) Error(msg string, f gobgplog.Fields) { l.log.Error(msg, l.attrs(f)...) }
func (l *bgpLogger) Warn(msg string, f gobgplog.Fields)  { l.log.Warn(msg, l.attrs(f)...) }
func (l *bgpLogger) Info(msg string, f gobgplog.Fields)  { l.log.Info(msg, l.attrs(f)...) }
func (l *bgpLogger) Debug(string, gobgplog.Fields)       {}
func (l *bgpLogger) SetLevel(gobgplog.LogLevel)          {}
func (l *bgpLogger) GetLevel() gobgplog.LogLevel         { return gobgplog.InfoLevel }
