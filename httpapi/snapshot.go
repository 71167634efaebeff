package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/raftguard/raftguard/fsm"
)

// SnapshotContentType is the media type of a snapshot file.
const SnapshotContentType = "application/vnd.raftguard.snapshot"

// RestoreResponse is the answer of POST /v1/cluster/snapshot/restore.
type RestoreResponse struct {
	Peers        int    `json:"peers"`
	AppliedIndex uint64 `json:"applied_index"`
}

// saveSnapshot streams the replicated state in snapshot format: the whole
// registry and the cluster's secrets (the WireGuard server key, the CA key,
// preshared keys, the join token). It is never cached.
func (s *Server) saveSnapshot(w http.ResponseWriter, r *request) error {
	h := w.Header()
	h.Set("Content-Type", SnapshotContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="raftguard-%s.snap"`, time.Now().UTC().Format("20060102T150405Z")))
	// Encode to memory first so that an error can still be answered as
	// an error rather than as a truncated file.
	var buf bytes.Buffer
	if err := s.b.State().WriteSnapshot(&buf); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = buf.WriteTo(w)
	return nil
}

// restoreSnapshot replaces the replicated state with the uploaded snapshot,
// through Raft, so that every node takes it. The file is read and checked
// completely first (the same checks the state machine's Restore makes, so
// the restore cannot fail half way): a bad file changes nothing.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *request) error {
	if len(r.body) == 0 {
		return errorf(http.StatusBadRequest, "invalid", "request body is empty; send a snapshot file (GET /v1/cluster/snapshot)")
	}
	// The file must pass every rule a live write passes (fsm owns them);
	// the scratch state machine then shows what the snapshot holds.
	if err := fsm.ValidateSnapshot(bytes.NewReader(r.body)); err != nil {
		return errorf(http.StatusBadRequest, "invalid_snapshot", "not a valid snapshot: %v", err)
	}
	scratch := fsm.New(nil)
	if err := scratch.Restore(io.NopCloser(bytes.NewReader(r.body))); err != nil {
		return errorf(http.StatusBadRequest, "invalid_snapshot", "not a valid snapshot: %v", err)
	}
	if !scratch.Initialized() {
		return errorf(http.StatusBadRequest, "invalid_snapshot", "the snapshot holds no initialized cluster")
	}
	cur := s.b.State()
	if r.URL.Query().Get("force") != "true" && scratch.Cluster().CACertPEM != cur.Cluster().CACertPEM {
		return errorf(http.StatusConflict, "other_cluster", "the snapshot comes from another cluster (another CA): restoring it would replace this cluster's CA, tokens and server key; add ?force=true to restore it anyway")
	}
	before := cur.Nodes()
	var nodeTokens []fsm.AdminToken
	for _, n := range before {
		for _, t := range cur.AdminTokens() {
			if t.ID == NodeTokenID(n.ID) {
				nodeTokens = append(nodeTokens, t)
			}
		}
	}
	if err := s.b.RestoreSnapshot(bytes.NewReader(r.body), int64(len(r.body))); err != nil {
		return err
	}
	s.log.Info("replicated state restored from a snapshot", "bytes", len(r.body))
	// Keep the current members reachable: a backup taken before a node
	// joined (or moved) does not hold its API address, which forwarding
	// needs. This also applies at least one command after the restore,
	// which moves the state machine's index (see HeaderIndex) past every
	// index from before the restore: the restored state carries the
	// backup's own, older index.
	if err := s.reregister(before); err != nil {
		s.log.Warn("re-registering nodes after the restore", "err", err)
	}
	// Each member keeps the admin token of its own (the CLI on that node
	// uses it), even when the backup predates the node.
	if err := s.restoreNodeTokens(nodeTokens); err != nil {
		s.log.Warn("restoring the nodes' own admin tokens after the restore", "err", err)
	}
	total, _ := cur.PeerCounts()
	idx := cur.AppliedIndex()
	w.Header().Set(HeaderIndex, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, RestoreResponse{Peers: total, AppliedIndex: idx})
	return nil
}

// reregister records again the registrations of the Raft members among
// nodes (the state before a restore) that the restored state lacks or holds
// differently, and always this node's own.
func (s *Server) reregister(nodes []fsm.Node) error {
	servers, err := s.b.Servers()
	if err != nil {
		return err
	}
	member := map[string]bool{}
	for _, m := range servers {
		member[m.ID] = true
	}
	for _, n := range nodes {
		if !member[n.ID] {
			continue
		}
		if got, ok := s.b.State().Node(n.ID); ok && got.RaftAddr == n.RaftAddr && got.APIAddr == n.APIAddr && n.ID != s.b.NodeID() {
			continue
		}
		if _, err := s.b.Apply(fsm.CmdRegisterNode, fsm.RegisterNode{ID: n.ID, RaftAddr: n.RaftAddr, APIAddr: n.APIAddr, At: time.Now().UTC()}); err != nil {
			return fmt.Errorf("register %s: %w", n.ID, err)
		}
	}
	return nil
}

// restoreNodeTokens adds back the members' own admin tokens that the
// restored state lacks or holds with another hash.
func (s *Server) restoreNodeTokens(tokens []fsm.AdminToken) error {
	for _, t := range tokens {
		if got, ok := s.b.State().AdminTokenByHash(t.Hash); ok && got.ID == t.ID {
			continue
		}
		at := time.Now().UTC()
		if _, err := s.b.Apply(fsm.CmdRevokeAdminToken, fsm.RevokeAdminToken{ID: t.ID, At: at}); err != nil && !errors.Is(err, fsm.ErrNotFound) {
			return err
		}
		if _, err := s.b.Apply(fsm.CmdAddAdminToken, fsm.AddAdminToken{Token: t, At: at}); err != nil {
			return fmt.Errorf("token %s: %w", t.ID, err)
		}
	}
	return nil
}
