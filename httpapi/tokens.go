package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/internal/pki"
)

func (s *Server) joinToken(w http.ResponseWriter, r *request) error {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, JoinTokenResponse{Token: s.b.State().Cluster().JoinToken})
	return nil
}

func (s *Server) rotateJoinToken(w http.ResponseWriter, r *request) error {
	fp, err := s.caFingerprint()
	if err != nil {
		return err
	}
	tok, err := pki.NewJoinToken(fp)
	if err != nil {
		return err
	}
	if _, err := s.apply(w, fsm.CmdSetJoinToken, fsm.SetJoinToken{Token: tok, At: time.Now().UTC()}); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, JoinTokenResponse{Token: tok})
	return nil
}

func (s *Server) caFingerprint() (string, error) {
	ca, err := pki.ParseCA([]byte(s.b.State().Cluster().CACertPEM), []byte(s.b.State().Cluster().CAKeyPEM))
	if err != nil {
		return "", fmt.Errorf("cluster CA: %w", err)
	}
	return ca.Fingerprint(), nil
}

func (s *Server) listAdminTokens(w http.ResponseWriter, r *request) error {
	out := []TokenView{}
	for _, t := range s.b.State().AdminTokens() {
		out = append(out, TokenView{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

func (s *Server) createAdminToken(w http.ResponseWriter, r *request) error {
	var req struct {
		Name string `json:"name"`
	}
	if len(strings.TrimSpace(string(r.body))) > 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	if req.Name != "" {
		if err := fsm.ValidateName(req.Name); err != nil {
			return err
		}
	}
	tok, err := pki.NewAdminToken()
	if err != nil {
		return err
	}
	id := "tok-" + pki.HashToken(tok)[:12]
	at := fsm.AdminToken{ID: id, Name: req.Name, Hash: pki.HashToken(tok)}
	now := time.Now().UTC()
	if _, err := s.apply(w, fsm.CmdAddAdminToken, fsm.AddAdminToken{Token: at, At: now}); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, NewTokenResponse{TokenView: TokenView{ID: id, Name: req.Name, CreatedAt: now}, Token: tok})
	return nil
}

func (s *Server) revokeAdminToken(w http.ResponseWriter, r *request) error {
	id := r.PathValue("id")
	if _, err := s.apply(w, fsm.CmdRevokeAdminToken, fsm.RevokeAdminToken{ID: id, At: time.Now().UTC()}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
