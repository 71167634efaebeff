package agent

// The cluster service: the workflows the API's handlers call, each one
// method. A handler decodes the request, checks what belongs to HTTP
// (tokens, the caller's TLS certificate), calls the method and encodes its
// answer. Methods that change the replicated state run on the leader
// (httpapi.ErrNotLeader elsewhere, and the API forwards).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/pki"
)

var _ httpapi.ClusterService = (*Agent)(nil)

// NodeTokenID is the admin token ID given to a node when it joins.
func NodeTokenID(nodeID string) string { return "node-" + nodeID }

// UpdateSettings changes cluster settings (on the leader), validated by
// the rules bootstrap applies (fsm.ValidateSettings), and returns the new
// settings.
func (a *Agent) UpdateSettings(p httpapi.SettingsPatch) (fsm.Settings, error) {
	c := fsm.UpdateSettings{Endpoint: p.Endpoint, MTU: p.MTU, Keepalive: p.Keepalive, NAT: p.NAT, VIPMode: p.VIPMode, At: time.Now().UTC()}
	if p.ClientAllowedIPs != nil {
		allowed := []netip.Prefix{}
		for _, s := range SplitList(*p.ClientAllowedIPs) {
			pf, err := fsm.ParsePrefix(s)
			if err != nil {
				return fsm.Settings{}, fmt.Errorf("client allowed IPs: %w", err)
			}
			allowed = append(allowed, pf)
		}
		c.ClientAllowedIPs = &allowed
	}
	if p.ClientDNS != nil {
		dns := SplitList(*p.ClientDNS)
		if dns == nil {
			dns = []string{}
		}
		c.ClientDNS = &dns
	}
	// Check first, so that a refused change is not proposed; Apply checks
	// again.
	next := a.state.Settings().Updated(c)
	if err := fsm.ValidateSettings(&next); err != nil {
		return fsm.Settings{}, err
	}
	if _, err := a.Apply(fsm.CmdUpdateSettings, c); err != nil {
		return fsm.Settings{}, err
	}
	return a.state.Settings(), nil
}

// RemoveNode removes node id: from the Raft configuration, from the
// replicated state (which revokes its certificate: every node then refuses
// it on the Raft port and the API), and its own admin token. Each step is
// skipped once done, so a retry after a failure (leadership lost midway)
// finishes the removal.
func (a *Agent) RemoveNode(id string) error {
	if id == a.node.NodeID {
		return fmt.Errorf("%w: node %q is the leader: transfer leadership first (raftguard cluster transfer-leader)", httpapi.ErrIsLeader, id)
	}
	st := a.state
	known := func() bool {
		_, registered := st.Node(id)
		_, hasCert := st.NodeCert(id)
		return registered || hasCert
	}
	hasToken := func() bool {
		return slices.ContainsFunc(st.AdminTokens(), func(t fsm.AdminToken) bool { return t.ID == NodeTokenID(id) })
	}
	if err := a.checkMember(id); err != nil && !known() && !hasToken() {
		return err
	}
	if err := a.RemoveServer(id); err != nil {
		return err
	}
	if known() {
		if _, err := a.Apply(fsm.CmdRemoveNode, fsm.RemoveNode{ID: id, At: time.Now().UTC()}); err != nil {
			return err
		}
	}
	if hasToken() {
		if _, err := a.Apply(fsm.CmdRevokeAdminToken, fsm.RevokeAdminToken{ID: NodeTokenID(id), At: time.Now().UTC()}); err != nil && !errors.Is(err, fsm.ErrNotFound) {
			return err
		}
	}
	return nil
}

// checkMember reports fsm.ErrNotFound unless id is in the Raft
// configuration.
func (a *Agent) checkMember(id string) error {
	servers, err := a.Servers()
	if err != nil {
		return err
	}
	for _, srv := range servers {
		if srv.ID == id {
			return nil
		}
	}
	return fmt.Errorf("%w: no node %q in the cluster", fsm.ErrNotFound, id)
}

// members lists the current members for fsm's join rules: the Raft
// configuration's servers and the registered nodes.
func (a *Agent) members() ([]fsm.Member, error) {
	servers, err := a.Servers()
	if err != nil {
		return nil, err
	}
	raftAddrs := make(map[string]string, len(servers))
	for _, m := range servers {
		raftAddrs[m.ID] = m.RaftAddr
	}
	return fsm.Members(raftAddrs, a.state.Nodes()), nil
}

// IssueJoinCertificate is join step one, for a caller whose join token the
// API has checked: it signs the joining node's certificate (recorded first,
// so that removing the node revokes it; a certificate issued to the same
// node id before is revoked by this) and gives the node an admin token of
// its own.
func (a *Agent) IssueJoinCertificate(req httpapi.JoinCertRequest) (httpapi.JoinCertResponse, error) {
	var out httpapi.JoinCertResponse
	members, err := a.members()
	if err != nil {
		return out, err
	}
	if err := fsm.CheckNewNodeID(members, req.NodeID); err != nil {
		return out, err
	}
	var ips []net.IP
	var addrs []netip.Addr
	for _, s := range req.IPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return out, fmt.Errorf("%w: %q is not an IP address", fsm.ErrInvalid, s)
		}
		ips, addrs = append(ips, net.IP(ip.Unmap().AsSlice())), append(addrs, ip)
	}
	if err := fsm.CheckCertIPs(members, req.NodeID, addrs); err != nil {
		return out, err
	}
	// The VIPs are in every node's certificate, so API clients may use them.
	for _, v := range a.state.Settings().VIPs {
		ips = append(ips, net.IP(v.Addr().AsSlice()))
	}
	cl := a.state.Cluster()
	ca, err := pki.ParseCA([]byte(cl.CACertPEM), []byte(cl.CAKeyPEM))
	if err != nil {
		return out, fmt.Errorf("cluster CA: %w", err)
	}
	cert, err := ca.SignNode([]byte(req.CSR), req.NodeID, ips, []string{req.NodeID}, time.Now())
	if err != nil {
		return out, fmt.Errorf("%w: certificate request: %v", fsm.ErrInvalid, err)
	}
	tok, err := pki.NewAdminToken()
	if err != nil {
		return out, err
	}
	now := time.Now().UTC()
	parsed, err := pki.ParseCertPEM(cert)
	if err != nil {
		return out, fmt.Errorf("issued certificate: %w", err)
	}
	if _, err := a.Apply(fsm.CmdSetNodeCert, fsm.SetNodeCert{ID: req.NodeID, Fingerprint: pki.Fingerprint(parsed), NotAfter: parsed.NotAfter.UTC(), At: now}); err != nil {
		return out, err
	}
	id := NodeTokenID(req.NodeID)
	if _, err := a.Apply(fsm.CmdRevokeAdminToken, fsm.RevokeAdminToken{ID: id, At: now}); err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return out, err
	}
	if _, err := a.Apply(fsm.CmdAddAdminToken, fsm.AddAdminToken{Token: fsm.AdminToken{ID: id, Name: "node " + req.NodeID, Hash: pki.HashToken(tok)}, At: now}); err != nil {
		return out, err
	}
	return httpapi.JoinCertResponse{CACert: cl.CACertPEM, Cert: string(cert), AdminToken: tok}, nil
}

// Join is join step two, for a caller whose token and certificate the API
// has checked: it adds the node as a voter and registers its addresses.
func (a *Agent) Join(req httpapi.JoinRequest) (httpapi.JoinResponse, error) {
	for _, addr := range []string{req.RaftAddr, req.APIAddr} {
		if err := fsm.ValidateNodeAddr(addr); err != nil {
			return httpapi.JoinResponse{}, err
		}
	}
	members, err := a.members()
	if err != nil {
		return httpapi.JoinResponse{}, err
	}
	if _, err := fsm.CheckJoinAddrs(members, req.NodeID, req.RaftAddr, req.APIAddr); err != nil {
		return httpapi.JoinResponse{}, err
	}
	if err := a.AddVoter(req.NodeID, req.RaftAddr); err != nil {
		return httpapi.JoinResponse{}, err
	}
	if _, err := a.Apply(fsm.CmdRegisterNode, fsm.RegisterNode{ID: req.NodeID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, At: time.Now().UTC()}); err != nil {
		return httpapi.JoinResponse{}, err
	}
	a.log.Info("node joined", "node", req.NodeID, "raft_addr", req.RaftAddr, "api_addr", req.APIAddr)
	return httpapi.JoinResponse{LeaderID: a.node.NodeID}, nil
}

// transferTries bounds the tries of one leadership transfer.
const transferTries = 3

// HandOver hands leadership to node to (any healthy follower when "") and
// returns the new leader once it serves. Raft gives the target one
// election timeout to catch up; under a heavy write load that can run
// out, so it tries a few times while this node still leads.
func (a *Agent) HandOver(ctx context.Context, to string) (string, error) {
	if to != "" {
		if err := a.checkMember(to); err != nil {
			return "", err
		}
		if to == a.node.NodeID {
			return to, nil
		}
	}
	for try := 1; ; try++ {
		id, err := a.TransferLeadership(ctx, to)
		if err == nil {
			return id, nil
		}
		if try == transferTries || errors.Is(err, httpapi.ErrNotLeader) || ctx.Err() != nil || !a.IsLeader() {
			return "", err
		}
		a.log.Warn("leadership transfer failed; trying again", "to", to, "try", try, "err", err)
	}
}
