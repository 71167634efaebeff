package httpapi

import (
	"net/http"
	"strconv"

	"github.com/skip2/go-qrcode"

	"github.com/raftguard/raftguard/httpapi/console"
)

// registerConsole adds the web console: its session routes, the QR route it
// uses to show a new peer's config, and its pages and assets.
func (s *Server) registerConsole() {
	s.handle("POST /v1/session", public, write, s.login, withPrepare(s.prepareLogin), withMaxBody(4096))
	s.handle("GET /v1/session", public, local, s.getSession)
	s.handle("DELETE /v1/session", admin, write, s.logout)
	s.handle("POST /v1/qr", admin, local, s.qr, withMaxBody(8192))
	pages := console.Handler()
	for _, p := range console.Patterns {
		s.mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(HeaderNode, s.b.NodeID())
			pages.ServeHTTP(w, r)
		}))
	}
}

// QRRequest is the body of POST /v1/qr.
type QRRequest struct {
	Text string `json:"text"`
}

// qr renders a text (a client config just created, with its private key)
// as a PNG QR code. Nothing is stored or logged: the console needs it
// because a new peer's private key exists only in the create answer.
func (s *Server) qr(w http.ResponseWriter, r *request) error {
	var req QRRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Text == "" {
		return errorf(http.StatusBadRequest, "invalid", "text is empty")
	}
	png, err := qrcode.Encode(req.Text, qrcode.Medium, -qrModulePixels)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid", "text does not fit in a QR code")
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(png)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(png)
	return nil
}
