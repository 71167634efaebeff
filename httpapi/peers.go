package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/clientconf"
	"github.com/raftguard/raftguard/internal/wgkey"
)

func (s *Server) iface(w http.ResponseWriter, r *request) error {
	st := s.b.State()
	set := st.Settings()
	total, enabled := st.PeerCounts()
	writeJSON(w, http.StatusOK, InterfaceView{
		PublicKey:  set.PublicKey,
		ListenPort: set.ListenPort,
		Addresses:  set.ServerAddresses(),
		VIPs:       set.VIPs,
		Endpoint:   set.Endpoint,
		MTU:        set.MTU,
		Peers:      total,
		Enabled:    enabled,
	})
	return nil
}

func (s *Server) keys(w http.ResponseWriter, r *request) error {
	kp, err := wgkey.Generate()
	if err != nil {
		return err
	}
	psk, err := wgkey.Preshared()
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, Keys{PrivateKey: kp.Private, PublicKey: kp.Public, PresharedKey: psk})
	return nil
}

func (s *Server) listPeers(w http.ResponseWriter, r *request) error {
	peers := s.b.State().Peers()
	stats := s.liveStats()
	out := make([]PeerView, 0, len(peers))
	for _, p := range peers {
		out = append(out, viewPeer(p, statsFor(stats, p.PublicKey)))
	}
	writeJSON(w, http.StatusOK, map[string][]PeerView{"peers": out})
	return nil
}

func statsFor(m map[string]PeerStats, key string) *PeerStats {
	if st, ok := m[key]; ok {
		return &st
	}
	return nil
}

func (s *Server) lookupPeer(name string) (fsm.Peer, error) {
	p, ok := s.b.State().Peer(name)
	if !ok {
		return p, errorf(http.StatusNotFound, "not_found", "no peer named %q", name)
	}
	return p, nil
}

func (s *Server) getPeer(w http.ResponseWriter, r *request) error {
	p, err := s.lookupPeer(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewPeer(p, statsFor(s.liveStats(), p.PublicKey)))
	return nil
}

func parsePrefixes(field string, in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		p, err := fsm.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// genKeys are the keys generated for a create without a public key.
type genKeys struct {
	private, public, psk string
}

// header encodes the keys for headerGenerated: "PRIVATE PUBLIC [PRESHARED]".
// The public key travels too, so that the leader need not derive it again
// (an X25519 multiplication per create).
func (g *genKeys) header() string {
	if g.psk == "" {
		return g.private + " " + g.public
	}
	return g.private + " " + g.public + " " + g.psk
}

// parseGenerated decodes headerGenerated. Errors never echo the value. The
// public key is taken as the forwarding node sent it: a caller that forges
// a mismatched pair only gets a client config that does not work.
func parseGenerated(v string) (*genKeys, error) {
	parts := strings.Fields(v)
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("%w: malformed generated keys", fsm.ErrInvalid)
	}
	for _, k := range parts {
		if err := fsm.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("generated keys: %w", err)
		}
	}
	g := &genKeys{private: parts[0], public: parts[1]}
	if len(parts) == 3 {
		g.psk = parts[2]
	}
	return g, nil
}

// prepareCreate runs on the node that received a create. It checks the
// body and, when it names no public key, generates the key pair (and a
// preshared key unless preshared_key is given) once, so that every try of
// the request, here or on the leader, proposes the same peer.
func (s *Server) prepareCreate(r *request) error {
	if v := r.Header.Get(headerGenerated); v != "" && forwardedByNode(r.Request) {
		g, err := parseGenerated(v)
		if err != nil {
			return err
		}
		r.gen = g
		return nil
	}
	req, err := parseCreate(r)
	if err != nil {
		return err
	}
	if req.PublicKey != nil {
		return nil
	}
	kp, err := wgkey.Generate()
	if err != nil {
		return err
	}
	g := &genKeys{private: kp.Private, public: kp.Public}
	if req.PresharedKey == nil {
		if g.psk, err = wgkey.Preshared(); err != nil {
			return err
		}
	}
	r.gen = g
	return nil
}

// parseCreate decodes and checks a create's body as far as that can be done
// without the state.
func parseCreate(r *request) (CreatePeerRequest, error) {
	var req CreatePeerRequest
	if err := decode(r, &req); err != nil {
		return req, err
	}
	if err := fsm.ValidateName(req.Name); err != nil {
		return req, err
	}
	if req.PublicKey != nil {
		if err := fsm.ValidateKey(*req.PublicKey); err != nil {
			return req, fmt.Errorf("public_key: %w", err)
		}
	}
	if req.PresharedKey != nil && *req.PresharedKey != "" {
		if err := fsm.ValidateKey(*req.PresharedKey); err != nil {
			return req, fmt.Errorf("preshared_key: %w", err)
		}
	}
	return req, nil
}

func (s *Server) createPeer(w http.ResponseWriter, r *request) error {
	req, err := parseCreate(r)
	if err != nil {
		return err
	}
	cmd := fsm.AddPeer{Name: req.Name, Enabled: true, At: time.Now().UTC()}
	if req.Enabled != nil {
		cmd.Enabled = *req.Enabled
	}
	switch {
	case req.PublicKey != nil:
		cmd.PublicKey = *req.PublicKey
	case r.gen != nil:
		cmd.PublicKey, cmd.PresharedKey = r.gen.public, r.gen.psk
	default:
		return errorf(http.StatusInternalServerError, "internal", "no key was generated for the peer")
	}
	if req.PresharedKey != nil {
		cmd.PresharedKey = *req.PresharedKey
	}
	if req.ExpiresAt != nil {
		if cmd.ExpiresAt, err = parseExpiry(*req.ExpiresAt); err != nil {
			return err
		}
	}
	set := s.b.State().Settings()
	if cmd.PublicKey == set.PublicKey {
		return fmt.Errorf("%w: public_key is the server's own public key", fsm.ErrDuplicateKey)
	}
	for _, a := range req.Addresses {
		p, err := fsm.ParseHostAddress(a)
		if err != nil {
			return fmt.Errorf("addresses: %w", err)
		}
		cmd.Addresses = append(cmd.Addresses, p)
	}
	routes, err := parsePrefixes("allowed_ips", req.AllowedIPs)
	if err != nil {
		return err
	}
	if err := fsm.ValidatePeerRoutes(s.b.State().RouteContext(), routes); err != nil {
		return err
	}
	if len(routes) > 0 {
		cmd.AllowedIPs = routes
	}
	if _, exists := s.b.State().Peer(cmd.Name); !exists && cmd.Enabled {
		if err := s.checkPeerLimit(); err != nil {
			return err
		}
	}
	res, err := s.apply(w, fsm.CmdAddPeer, cmd)
	if err != nil {
		return err
	}
	out := res.(fsm.AddPeerResult)
	resp := CreatePeerResponse{PeerView: viewPeer(out.Peer, nil)}
	// The peer exists with keys generated for this very request: an
	// earlier try of it created the peer (its answer was lost), so this is
	// still the creation, and the caller gets the private key.
	ours := r.gen != nil && out.Peer.PublicKey == r.gen.public
	status := http.StatusOK
	if out.Created || ours {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/peers/"+url.PathEscape(out.Peer.Name))
		if ours {
			resp.PrivateKey = r.gen.private
			resp.Config = clientconf.Render(set, out.Peer, r.gen.private, out.Peer.PresharedKey)
			w.Header().Set("Cache-Control", "no-store")
		}
	}
	writeJSON(w, status, resp)
	return nil
}

func (s *Server) updatePeer(w http.ResponseWriter, r *request) error {
	name := r.PathValue("name")
	var req UpdatePeerRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	cmd := fsm.UpdatePeer{Name: name, Enabled: req.Enabled, PresharedKey: req.PresharedKey, At: time.Now().UTC()}
	if req.ExpiresAt != nil {
		exp, err := parseExpiry(*req.ExpiresAt)
		if err != nil {
			return err
		}
		cmd.ExpiresAt = &exp
	}
	if req.PresharedKey != nil && *req.PresharedKey != "" {
		if err := fsm.ValidateKey(*req.PresharedKey); err != nil {
			return fmt.Errorf("preshared_key: %w", err)
		}
	}
	if req.AllowedIPs != nil {
		routes, err := parsePrefixes("allowed_ips", *req.AllowedIPs)
		if err != nil {
			return err
		}
		if err := fsm.ValidatePeerRoutes(s.b.State().RouteContext(), routes); err != nil {
			return err
		}
		cmd.AllowedIPs = &routes
	}
	if req.Enabled != nil && *req.Enabled {
		if p, ok := s.b.State().Peer(name); ok && !p.Enabled {
			if err := s.checkPeerLimit(); err != nil {
				return err
			}
		}
	}
	// No check against the local replica first: a leader elected a moment
	// ago may not have applied every committed entry yet. The state
	// machine answers not found in log order.
	res, err := s.apply(w, fsm.CmdUpdatePeer, cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewPeer(res.(fsm.Peer), nil))
	return nil
}

// checkPeerLimit refuses one more enabled peer when this node's data plane
// already holds as many as it can.
func (s *Server) checkPeerLimit() error {
	if s.cfg.PeerLimit == nil {
		return nil
	}
	limit := s.cfg.PeerLimit()
	if limit <= 0 {
		return nil
	}
	if _, enabled := s.b.State().PeerCounts(); enabled >= limit {
		return errorf(http.StatusUnprocessableEntity, "peer_limit",
			"the cluster holds %d enabled peers, the most this node's data plane can serve; disable or delete peers first, or run the kernel data plane", enabled)
	}
	return nil
}

func (s *Server) deletePeer(w http.ResponseWriter, r *request) error {
	name := r.PathValue("name")
	// As in updatePeer, the state machine decides whether the peer
	// exists, in log order.
	_, err := s.apply(w, fsm.CmdDeletePeer, fsm.DeletePeer{Name: name, At: time.Now().UTC()})
	if err != nil && r.attempt > 0 && isNotFound(err) {
		// An earlier try whose outcome was unknown deleted the peer.
		err = nil
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func isNotFound(err error) bool {
	return errors.Is(err, fsm.ErrNotFound) || toAPIError(err).Status == http.StatusNotFound
}

func (s *Server) peerConfig(w http.ResponseWriter, r *request) error {
	p, err := s.lookupPeer(r.PathValue("name"))
	if err != nil {
		return err
	}
	conf := clientconf.Render(s.b.State().Settings(), p, "", "")
	switch f := r.URL.Query().Get("format"); f {
	case "", "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(conf))
	case "qr":
		png, err := qrcode.Encode(conf, qrcode.Medium, -qrModulePixels)
		if err != nil {
			return fmt.Errorf("QR code: %w", err)
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(len(png)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(png)
	default:
		return errorf(http.StatusBadRequest, "invalid", "format %q: use text or qr", f)
	}
	return nil
}

// qrModulePixels is the width of one QR module in the PNG: big enough for a
// phone camera to read the code off a screen.
const qrModulePixels = 6

// Placeholders written into a client config for keys the server does not
// know (or will not show).
const (
	PrivateKeyPlaceholder   = clientconf.PrivateKeyPlaceholder
	PresharedKeyPlaceholder = clientconf.PresharedKeyPlaceholder
)
