// Package console is raftguard's web console: a few static files (one HTML
// page, a style sheet, a script) embedded in the binary and served by every
// node next to the API, which the page calls with the browser's session
// cookie.
//
// The files are hand-written HTML, CSS and plain JavaScript: no framework,
// no build step, nothing fetched from elsewhere at run time. The whole
// console is a few tens of kilobytes, loads in one round trip from the node
// being looked at, and a fresh clone builds it with `go build` alone.
//
// Every answer carries a Content-Security-Policy that allows scripts only
// from the node itself (no inline script), no framing, no referrer and no
// MIME sniffing. The script writes user data (peer names, endpoints, error
// messages) with textContent only, never as HTML.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Patterns are the mux patterns under which Handler serves the console.
var Patterns = []string{"GET /{$}", "GET /assets/"}

// ContentSecurityPolicy is the policy sent with every console file.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// SetSecurityHeaders sets the headers every console answer carries.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	// The files change with the binary: a browser revalidates rather than
	// run a previous version's script against a newer API.
	h.Set("Cache-Control", "no-cache")
}

// Handler serves the console page at / and its files under /assets/.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetSecurityHeaders(w.Header())
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		files.ServeHTTP(w, r)
	})
}
