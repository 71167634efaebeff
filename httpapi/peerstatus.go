package httpapi

import (
	"context"
	"fmt"
)

// MemberStatus asks node id (through its API, over the nodes' mutual TLS)
// for its own status.
func (s *Server) MemberStatus(ctx context.Context, id string) (NodeStatus, error) {
	if id == s.b.NodeID() {
		return s.status(), nil
	}
	n, ok := s.b.State().Node(id)
	if !ok || n.APIAddr == "" {
		return NodeStatus{}, fmt.Errorf("node %s has no registered API address", id)
	}
	return s.fetchNode(ctx, n.APIAddr)
}
