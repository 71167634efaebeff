package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
)

// prepareJoin runs on the node a joining node called for join step two,
// which sees the joiner's TLS connection: the request must come with the
// node certificate issued at step one, for the same node id, and the Raft
// and API addresses it registers must be among the IP addresses that
// certificate names. A forwarded request was checked by the node that
// forwarded it.
func (s *Server) prepareJoin(r *request) error {
	if forwardedByNode(r.Request) {
		return nil
	}
	var req JoinRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		s.noteRefusal(sourceIP(r.Request), "join", req.NodeID, "certificate_required")
		return errorf(http.StatusForbidden, "certificate_required", "join step two must be made with the node certificate issued by POST /v1/cluster/join/certificate")
	}
	cert := r.TLS.VerifiedChains[0][0]
	if cert.Subject.CommonName != req.NodeID {
		s.noteRefusal(sourceIP(r.Request), "join", req.NodeID, "certificate_mismatch")
		return errorf(http.StatusForbidden, "certificate_mismatch", "the client certificate was issued to node %q, not %q", cert.Subject.CommonName, req.NodeID)
	}
	for _, a := range []string{req.RaftAddr, req.APIAddr} {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			continue // a host name: the certificate names no host names but the node id
		}
		if !slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool {
			got, ok := netip.AddrFromSlice(ip)
			return ok && got.Unmap() == ap.Addr().Unmap()
		}) {
			s.noteRefusal(sourceIP(r.Request), "join", req.NodeID, "certificate_mismatch")
			return errorf(http.StatusForbidden, "certificate_mismatch", "address %s is not named in the certificate of node %q", a, req.NodeID)
		}
	}
	return nil
}

// chainPrepare runs prepare steps in order, stopping at the first error.
func chainPrepare(steps ...func(*request) error) func(*request) error {
	return func(r *request) error {
		for _, f := range steps {
			if err := f(r); err != nil {
				return err
			}
		}
		return nil
	}
}
