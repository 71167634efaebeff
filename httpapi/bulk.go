package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/wgconf"
)

// MaxBulkRequest is the most peers one POST /v1/peers/bulk takes.
const MaxBulkRequest = 20_000

// BulkCreateRequest is the body of POST /v1/peers/bulk: peers with their
// public keys (the server generates none here), created all or nothing.
type BulkCreateRequest struct {
	Peers  []CreatePeerRequest `json:"peers"`
	DryRun bool                `json:"dry_run,omitempty"`
}

// BulkCreateResponse is its answer: every peer as created (or as it
// already was), and how many were new.
type BulkCreateResponse struct {
	Peers    []PeerView `json:"peers"`
	Created  int        `json:"created"`
	Existing int        `json:"existing"`
	DryRun   bool       `json:"dry_run"`
}

// ImportRequest is the bulk create of a wg-quick server config's peers
// (raftguard peer import, and server --bootstrap --import): each keeps its
// public key, preshared key, tunnel addresses and routes.
func ImportRequest(conf *wgconf.Config) BulkCreateRequest {
	var req BulkCreateRequest
	for _, p := range conf.Peers {
		pk, psk := p.PublicKey, p.PresharedKey
		cp := CreatePeerRequest{Name: p.Name, PublicKey: &pk, PresharedKey: &psk}
		for _, a := range p.Addresses {
			cp.Addresses = append(cp.Addresses, a.String())
		}
		for _, r := range p.Routes {
			cp.AllowedIPs = append(cp.AllowedIPs, r.String())
		}
		req.Peers = append(req.Peers, cp)
	}
	return req
}

// BulkPeer turns the i-th peer of a bulk create into an AddPeer: the
// syntax is checked here, its routes against rc, every rule about the
// state by fsm when the command is checked or applied.
func BulkPeer(i int, req CreatePeerRequest, rc fsm.RouteContext) (fsm.AddPeer, error) {
	at := func(err error) error { return fmt.Errorf("peer %d (%q): %w", i+1, req.Name, err) }
	cmd := fsm.AddPeer{Name: req.Name, Enabled: true}
	if err := fsm.ValidateName(req.Name); err != nil {
		return cmd, at(err)
	}
	if req.PublicKey == nil {
		return cmd, at(fmt.Errorf("%w: public_key is required in a bulk create", fsm.ErrInvalid))
	}
	if err := fsm.ValidateKey(*req.PublicKey); err != nil {
		return cmd, at(fmt.Errorf("public_key: %w", err))
	}
	cmd.PublicKey = *req.PublicKey
	if req.PresharedKey != nil && *req.PresharedKey != "" {
		if err := fsm.ValidateKey(*req.PresharedKey); err != nil {
			return cmd, at(fmt.Errorf("preshared_key: %w", err))
		}
		cmd.PresharedKey = *req.PresharedKey
	}
	if req.Enabled != nil {
		cmd.Enabled = *req.Enabled
	}
	if req.ExpiresAt != nil {
		exp, err := parseExpiry(*req.ExpiresAt)
		if err != nil {
			return cmd, at(err)
		}
		cmd.ExpiresAt = exp
	}
	for _, a := range req.Addresses {
		p, err := fsm.ParseHostAddress(a)
		if err != nil {
			return cmd, at(fmt.Errorf("addresses: %w", err))
		}
		cmd.Addresses = append(cmd.Addresses, p)
	}
	routes, err := parsePrefixes("allowed_ips", req.AllowedIPs)
	if err != nil {
		return cmd, at(err)
	}
	if err := fsm.ValidatePeerRoutes(rc, routes); err != nil {
		return cmd, at(err)
	}
	if len(routes) > 0 {
		cmd.AllowedIPs = routes
	}
	return cmd, nil
}

// bulkCreatePeers checks the whole request against the leader's state
// first (fsm.CheckAddPeers: every peer by the single create's rules, with
// the ones before it added), then, unless it is a dry run, applies it in
// log entries of at most fsm.MaxBulkPeers peers. Only a write that lands
// between those entries can make a later entry fail; the answer then says
// how many peers were created.
func (s *Server) bulkCreatePeers(w http.ResponseWriter, r *request) error {
	var req BulkCreateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Peers) == 0 || len(req.Peers) > MaxBulkRequest {
		return fmt.Errorf("%w: send 1 to %d peers, not %d", fsm.ErrInvalid, MaxBulkRequest, len(req.Peers))
	}
	set := s.b.State().Settings()
	rc := s.b.State().RouteContext()
	all := fsm.AddPeers{At: time.Now().UTC()}
	newEnabled := 0
	for i, p := range req.Peers {
		cmd, err := BulkPeer(i, p, rc)
		if err != nil {
			return err
		}
		if cmd.PublicKey == set.PublicKey {
			return fmt.Errorf("%w: peer %d (%q): public_key is the server's own public key", fsm.ErrDuplicateKey, i+1, cmd.Name)
		}
		if _, exists := s.b.State().Peer(cmd.Name); !exists && cmd.Enabled {
			newEnabled++
		}
		all.Peers = append(all.Peers, cmd)
	}
	if s.cfg.PeerLimit != nil {
		if limit := s.cfg.PeerLimit(); limit > 0 {
			if _, enabled := s.b.State().PeerCounts(); enabled+newEnabled > limit {
				return errorf(http.StatusUnprocessableEntity, "peer_limit", "%d enabled peers and %d new ones exceed this node's data plane limit of %d", enabled, newEnabled, limit)
			}
		}
	}
	checked, err := s.b.State().CheckAddPeers(all)
	if err != nil {
		return err
	}
	resp := BulkCreateResponse{Peers: make([]PeerView, 0, len(all.Peers)), DryRun: req.DryRun}
	results := checked.Peers
	if !req.DryRun {
		results = results[:0:0]
		for start := 0; start < len(all.Peers); start += fsm.MaxBulkPeers {
			chunk := fsm.AddPeers{Peers: all.Peers[start:min(start+fsm.MaxBulkPeers, len(all.Peers))], At: all.At}
			res, err := s.apply(w, fsm.CmdAddPeers, chunk)
			if err != nil {
				if start > 0 {
					return fmt.Errorf("%w (the first %d peers were created)", err, start)
				}
				return err
			}
			results = append(results, res.(fsm.AddPeersResult).Peers...)
		}
	}
	for _, r := range results {
		if r.Created {
			resp.Created++
		} else {
			resp.Existing++
		}
		resp.Peers = append(resp.Peers, viewPeer(r.Peer, nil))
	}
	status := http.StatusOK
	if resp.Created > 0 && !req.DryRun {
		status = http.StatusCreated
		s.wrote(w)
	}
	writeJSON(w, status, resp)
	return nil
}
