package httpapi

import (
	"net/http"
	"strconv"

	"github.com/raftguard/raftguard/fsm"
)

// checkJoinerProtocol refuses a joining node whose build cannot apply the
// commands the cluster version allows: it would stop at the first one.
func (s *Server) checkJoinerProtocol(r *request) error {
	p := 1
	if h := r.Header.Get(HeaderProtocol); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 1 {
			return errorf(http.StatusBadRequest, "invalid", "%s: %q is not a protocol version", HeaderProtocol, h)
		}
		p = n
	}
	if cv := s.b.State().ClusterVersion(); p < cv {
		return errorf(http.StatusConflict, "upgrade_required", "the joining node applies protocol %d, the cluster runs version %d: install this cluster's raftguard version on it first", p, cv)
	}
	return nil
}

// requireCommand refuses, on the node that received the request and before
// it is forwarded, a write whose command the cluster version does not allow
// yet: a leader of an older version would not know the route, and some
// member could not apply the command.
func (s *Server) requireCommand(t fsm.CommandType) func(*request) error {
	return func(*request) error {
		return fsm.CheckProposable(t, nil, s.b.State().ClusterVersion())
	}
}
