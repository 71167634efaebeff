package httpapi

import (
	"bytes"
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
	snap, err := s.restoreAudit(r, r.body)
	if err != nil {
		return err
	}
	if err := s.b.RestoreSnapshot(bytes.NewReader(snap), int64(len(snap))); err != nil {
		return err
	}
	total, _ := cur.PeerCounts()
	idx := cur.AppliedIndex()
	w.Header().Set(HeaderIndex, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, RestoreResponse{Peers: total, AppliedIndex: idx})
	return nil
}
