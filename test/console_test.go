package test

// The web console in a real browser: Debian's chromium, headless, driven by
// chromedp, against three `raftguard server --dataplane none` processes.
// The suite skips when no chromium is installed. With
// RAFTGUARD_SCREENSHOTS=DIR it also saves a screenshot of every page there
// (docs/console-*.png are made that way).

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	browserdom "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/apiclient"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	if p := os.Getenv("RAFTGUARD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// consoleCluster is three server processes and an API client for them.
type consoleCluster struct {
	*procCluster
	api   map[string]string // node id -> API address
	token string
	http  *http.Client
}

func startConsoleCluster(t *testing.T) *consoleCluster {
	t.Helper()
	pc := newProcCluster(t, raftguardBinary(t))
	ports := freePorts(t, 6)
	cc := &consoleCluster{procCluster: pc, api: map[string]string{}}
	addr := func(i int) (string, string) {
		return fmt.Sprintf("127.0.0.1:%d", ports[2*i]), fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])
	}
	r1, a1 := addr(0)
	cc.api["n1"] = a1
	pc.start("n1", "--node-id", "n1", "--raft-addr", r1, "--api-addr", a1, "--dataplane", "none", "--bootstrap",
		"--vip", "192.0.2.10/24", "--pool", "10.99.0.0/24", "--client-dns", "10.99.0.1")
	var joinToken string
	poll(t, 20*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(pc.procs["n1"].dir, "join.token"))
		joinToken = strings.TrimSpace(string(b))
		return err
	})
	for i, id := range []string{"n2", "n3"} {
		r, a := addr(i + 1)
		cc.api[id] = a
		pc.start(id, "--node-id", id, "--raft-addr", r, "--api-addr", a, "--dataplane", "none", "--join", a1, "--token", joinToken)
	}
	b, err := os.ReadFile(filepath.Join(pc.procs["n1"].dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	cc.token = strings.TrimSpace(string(b))
	cc.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	poll(t, 30*time.Second, func() error {
		var st httpapi.ClusterStatus
		if err := cc.get("n1", "/v1/cluster", &st); err != nil {
			return err
		}
		if len(st.Nodes) != 3 || st.LeaderID != "n1" || st.ClusterVersion < 3 {
			return fmt.Errorf("cluster: leader %q, %d nodes, version %d", st.LeaderID, len(st.Nodes), st.ClusterVersion)
		}
		for _, n := range st.Nodes {
			if !n.Reachable || n.AppliedIndex == 0 {
				return fmt.Errorf("node %s not ready", n.NodeID)
			}
		}
		return nil
	})
	return cc
}

// call makes an API request with the admin token (v: where to decode a
// 2xx JSON answer). It returns the status.
func (cc *consoleCluster) call(id, method, path string, in, v any) (int, error) {
	c := apiclient.Client{Base: "https://" + cc.api[id], Token: cc.token, HTTP: cc.http}
	ans, err := c.Call(context.Background(), method, path, in)
	if err != nil {
		return 0, err
	}
	if ans.Status/100 != 2 {
		return ans.Status, fmt.Errorf("%s %s: %d %s", method, path, ans.Status, ans.Body)
	}
	if v != nil {
		return ans.Status, json.Unmarshal(ans.Body, v)
	}
	return ans.Status, nil
}

func (cc *consoleCluster) get(id, path string, v any) error {
	_, err := cc.call(id, "GET", path, nil, v)
	return err
}

// browser starts a headless chromium (under nice) with a fresh profile. It
// skips the test when there is none.
func browser(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	bin := findChromium()
	if bin == "" {
		t.Skip("no chromium found (install Debian's chromium package, or set RAFTGUARD_CHROMIUM): skipping the browser tests of the web console")
	}
	// The browser shares the machine with the cluster and other work: run
	// it at a lower priority.
	wrapper := filepath.Join(t.TempDir(), "chromium-nice")
	script := "#!/bin/sh\nexec nice -n 10 " + bin + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(wrapper),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		// The nodes' certificates come from the cluster's own CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", bin, err)
	}
	t.Logf("chromium started in %s", time.Since(start).Round(time.Millisecond))
	// Count JavaScript dialogs (an injected alert() would open one) and
	// dismiss them so the page does not hang.
	dialogs := &atomic.Int32{}
	events := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range events {
			if err != nil {
				return
			}
			dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return ctx, dialogs
}

// run runs browser actions with a deadline.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that returns a value, with a deadline.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// text returns the text of the first element matching the CSS selector.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// eval evaluates a JavaScript expression, awaiting a promise.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	return get(t, ctx, "evaluate "+js, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// waitText waits until the element sel holds want.
func waitText(t *testing.T, ctx context.Context, sel, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var got string
	for time.Now().Before(deadline) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			got = s
		}
		if err == nil && strings.Contains(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s does not show %q within %s; it shows %q", sel, want, d, got)
}

// screenshot saves the page as DIR/console-NAME.png when
// RAFTGUARD_SCREENSHOTS is set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("RAFTGUARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	run(t, ctx, "settle", chromedp.Sleep(300*time.Millisecond))
	buf := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// decodeQR reads the text of a QR code in a PNG.
func decodeQR(t *testing.T, pngData []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		t.Fatalf("QR PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decode QR: %v", err)
	}
	return res.GetText()
}

// imagePNG returns the image the page shows in the img element with this
// id, at its own size, as a PNG (drawn on a canvas: the console's CSP
// rightly lets no script fetch the blob behind it).
func imagePNG(t *testing.T, ctx context.Context, id string) []byte {
	t.Helper()
	b64 := eval[string](t, ctx, `(async () => {
  const img = document.getElementById('`+id+`');
  await img.decode(); // wait until it has loaded
  const c = document.createElement('canvas');
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  c.getContext('2d').drawImage(img, 0, 0);
  return c.toDataURL('image/png').split(',')[1];
})()`)
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConsoleInBrowser drives the console on node n2 through a whole
// session: login, a peer's life, the join token, hostile input, CSRF, and
// the leader n1 killed while the page keeps working.
func TestConsoleInBrowser(t *testing.T) {
	ctx, dialogs := browser(t)
	began := time.Now()
	cc := startConsoleCluster(t)
	t.Logf("cluster ready in %s", time.Since(began).Round(time.Millisecond))
	base := "https://" + cc.api["n2"]

	// Log in with the keyboard only: the token field has the focus.
	run(t, ctx, "open the console", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	screenshot(t, ctx, "login")
	run(t, ctx, "wrong token", chromedp.SendKeys(chromedp.ID("token"), "rgadm1.wrong"+kb.Enter))
	waitText(t, ctx, "#login-error", "invalid admin token", 10*time.Second)
	run(t, ctx, "log in",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('token').value = ''`),
		chromedp.SendKeys(chromedp.ID("token"), cc.token+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("peer-search")))
	waitText(t, ctx, "#peers", "No peers yet", 10*time.Second)
	waitText(t, ctx, "#who", "node n2", 5*time.Second)

	// The cookie: HttpOnly, Secure, SameSite=Strict, with an expiry, and
	// out of reach of the page's script.
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	if err != nil {
		t.Fatal(err)
	}
	cookies := res.Cookies
	var session *network.Cookie
	for i, c := range cookies {
		if c.Name == httpapi.SessionCookie {
			session = cookies[i]
		}
	}
	if session == nil {
		t.Fatalf("no session cookie among %d cookies", len(cookies))
	}
	if !session.HTTPOnly || !session.Secure || session.SameSite != network.CookieSameSiteStrict || session.Session ||
		time.Unix(int64(session.Expires), 0).Before(time.Now().Add(time.Hour)) || session.Path != "/" {
		t.Fatalf("cookie flags: %+v", session)
	}
	docCookie := eval[string](t, ctx, "document.cookie")
	if strings.Contains(docCookie, session.Value) {
		t.Fatal("the page's script can read the session cookie")
	}

	// A write without the CSRF token is refused, with the cookie alone.
	csrfStatus := eval[int](t, ctx, `fetch('/v1/peers', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'no-csrf'})}).then(r => r.status)`)
	if csrfStatus != http.StatusForbidden {
		t.Fatalf("a write without the CSRF token answered %d", csrfStatus)
	}
	if st, _ := cc.call("n1", "GET", "/v1/peers/no-csrf", nil, nil); st != http.StatusNotFound {
		t.Fatalf("the write without CSRF took effect: %d", st)
	}

	// Create a peer; its config and QR code are shown once.
	run(t, ctx, "new peer",
		chromedp.Click(chromedp.CSS(`a[href="#/new"][data-page]`)),
		chromedp.WaitVisible(chromedp.ID("new-name")),
		chromedp.SendKeys(chromedp.ID("new-name"), "laptop"),
		chromedp.Click(chromedp.ID("new-submit")),
		chromedp.WaitVisible(chromedp.ID("new-config")),
		chromedp.WaitVisible(chromedp.ID("new-qr")))
	config := text(t, ctx, "#new-config")
	if !strings.Contains(config, "[Interface]") || !strings.Contains(config, "PrivateKey = ") {
		t.Fatalf("config shown: %q", config)
	}
	if qrText := decodeQR(t, imagePNG(t, ctx, "new-qr")); qrText != config {
		t.Fatalf("the QR code holds\n%q\nthe page shows\n%q", qrText, config)
	}
	// The download button saves laptop.conf with the same text.
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browserdom.SetDownloadBehavior, browserdom.SetDownloadBehaviorParams{
		Behavior: browserdom.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "download", chromedp.Click(chromedp.ID("new-download")))
	poll(t, 10*time.Second, func() error {
		got, err := os.ReadFile(filepath.Join(downloads, "laptop.conf"))
		if err != nil {
			return err
		}
		if string(got) != config {
			return fmt.Errorf("the download holds %q", got)
		}
		return nil
	})
	var peer httpapi.PeerView
	if err := cc.get("n3", "/v1/peers/laptop", &peer); err != nil {
		t.Fatal(err)
	}
	priv := regexp.MustCompile(`PrivateKey = (\S+)`).FindStringSubmatch(config)[1]
	if pub, err := wgkey.Public(priv); err != nil || pub != peer.PublicKey {
		t.Fatalf("the config's private key does not belong to the peer: %v", err)
	}
	screenshot(t, ctx, "new-peer")

	// Two more peers for the list, through the API.
	for _, name := range []string{"phone", "office-gw"} {
		if _, err := cc.call("n1", "POST", "/v1/peers", map[string]any{"name": name}, nil); err != nil {
			t.Fatal(err)
		}
	}

	// Disable and delete from the list.
	row := `tr[data-peer="laptop"]`
	run(t, ctx, "peers page",
		chromedp.Click(chromedp.ID("new-done")),
		chromedp.WaitVisible(chromedp.CSS(row)))
	waitText(t, ctx, "#peer-count", "3 peers", 10*time.Second)
	screenshot(t, ctx, "peers")
	run(t, ctx, "disable", chromedp.Click(chromedp.CSS(row+` button[data-action="disable"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` button[data-action="enable"]`)))
	waitText(t, ctx, row, "disabled", 5*time.Second)
	if err := cc.get("n3", "/v1/peers/laptop", &peer); err != nil || peer.Enabled {
		t.Fatalf("after disable: %+v %v", peer, err)
	}
	// Delete: cancel with Escape first, then confirm.
	run(t, ctx, "delete", chromedp.Click(chromedp.CSS(row+` button[data-action="delete"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm")))
	// The safe choice has the focus; Escape cancels.
	if f := eval[string](t, ctx, "document.activeElement.id"); f != "confirm-cancel" {
		t.Fatalf("the delete confirmation opens with the focus on %q", f)
	}
	run(t, ctx, "cancel", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(chromedp.ID("confirm")))
	if err := cc.get("n1", "/v1/peers/laptop", nil); err != nil {
		t.Fatalf("cancelled delete: %v", err)
	}
	run(t, ctx, "delete, confirm", chromedp.Click(chromedp.CSS(row+` button[data-action="delete"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-ok")),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitNotPresent(chromedp.CSS(row)))
	if st, _ := cc.call("n1", "GET", "/v1/peers/laptop?consistent=true", nil, nil); st != http.StatusNotFound {
		t.Fatalf("after delete: %d", st)
	}

	// Hostile text is shown as text: the search box echoes it, and a
	// create with it as the name fails with an error message quoting it.
	const xss = `<img src=x onerror=alert(1)>`
	run(t, ctx, "search", chromedp.SendKeys(chromedp.ID("peer-search"), xss))
	waitText(t, ctx, "#peers", "No peer matches “"+xss+"”", 5*time.Second)
	run(t, ctx, "hostile name",
		chromedp.Navigate(base+"/#/new"),
		chromedp.WaitVisible(chromedp.ID("new-name")),
		chromedp.SendKeys(chromedp.ID("new-name"), xss),
		chromedp.Click(chromedp.ID("new-submit")))
	waitText(t, ctx, "#new-error", xss, 10*time.Second)
	imgs := eval[int](t, ctx, "document.querySelectorAll('img').length")
	if imgs != 0 || dialogs.Load() != 0 {
		t.Fatalf("hostile text was rendered as HTML: %d img elements, %d dialogs", imgs, dialogs.Load())
	}

	// Rotate the join token.
	var oldJoin httpapi.JoinTokenResponse
	if err := cc.get("n1", "/v1/cluster/token", &oldJoin); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "rotate the join token",
		chromedp.Navigate(base+"/#/tokens"),
		chromedp.WaitVisible(chromedp.ID("token-table")),
		chromedp.Click(chromedp.ID("join-rotate")),
		chromedp.WaitVisible(chromedp.ID("confirm-ok")),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.ID("join-secret")))
	shown := text(t, ctx, "#join-secret")
	var newJoin httpapi.JoinTokenResponse
	if err := cc.get("n1", "/v1/cluster/token?consistent=true", &newJoin); err != nil {
		t.Fatal(err)
	}
	if shown != newJoin.Token || newJoin.Token == oldJoin.Token {
		t.Fatalf("join token: page shows %.12q..., cluster has %.12q..., was %.12q...", shown, newJoin.Token, oldJoin.Token)
	}
	screenshot(t, ctx, "tokens")

	// Create an admin token (shown once, and it works), then revoke it.
	run(t, ctx, "create an admin token",
		chromedp.SendKeys(chromedp.ID("token-name"), "ci-deploy"),
		chromedp.Click(chromedp.ID("token-create")),
		chromedp.WaitVisible(chromedp.ID("token-secret")))
	newTok := strings.TrimSpace(text(t, ctx, "#token-secret"))
	probe := func(tok string) int {
		c := apiclient.Client{Base: "https://" + cc.api["n1"], Token: tok, HTTP: cc.http}
		resp, err := c.Send(context.Background(), "GET", "/v1/peers", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	poll(t, 5*time.Second, func() error {
		if st := probe(newTok); st != http.StatusOK {
			return fmt.Errorf("the created token answers %d", st)
		}
		return nil
	})
	var toks struct {
		Tokens []httpapi.TokenView `json:"tokens"`
	}
	if err := cc.get("n1", "/v1/cluster/admin-tokens", &toks); err != nil {
		t.Fatal(err)
	}
	tokID := ""
	for _, tv := range toks.Tokens {
		if tv.Name == "ci-deploy" {
			tokID = tv.ID
		}
	}
	tokRow := `tr[data-token="` + tokID + `"]`
	run(t, ctx, "revoke it",
		chromedp.WaitVisible(chromedp.CSS(tokRow)),
		chromedp.Click(chromedp.CSS(tokRow+" button")),
		chromedp.WaitVisible(chromedp.ID("confirm-ok")),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitNotPresent(chromedp.CSS(tokRow)))
	poll(t, 5*time.Second, func() error {
		if st := probe(newTok); st != http.StatusUnauthorized {
			return fmt.Errorf("the revoked token answers %d", st)
		}
		return nil
	})

	// Settings: change the client DNS.
	run(t, ctx, "settings", chromedp.Navigate(base+"/#/settings"), chromedp.WaitVisible(chromedp.ID("settings-form")))
	screenshot(t, ctx, "settings")
	run(t, ctx, "change DNS",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('set-dns').value = ''`),
		chromedp.SendKeys(chromedp.ID("set-dns"), "10.99.0.53, 2001:db8::53"),
		chromedp.Click(chromedp.ID("settings-save")))
	waitText(t, ctx, "#flash", "Settings saved", 10*time.Second)
	var settings httpapi.SettingsView
	if err := cc.get("n3", "/v1/cluster/settings?consistent=true", &settings); err != nil || strings.Join(settings.ClientDNS, " ") != "10.99.0.53 2001:db8::53" {
		t.Fatalf("settings after the change: %+v %v", settings, err)
	}

	// The cluster page, then the leader is killed: the page on n2 shows the
	// new leader and keeps working.
	run(t, ctx, "cluster", chromedp.Navigate(base+"/#/cluster"), chromedp.WaitVisible(chromedp.ID("node-table")))
	waitText(t, ctx, "#handover-warning", "There is no automatic failback", time.Second)
	// Hand leadership over from the page: to n3 (or wherever it is not),
	// then back to n1, which is then killed.
	handover := func(to string) {
		t.Helper()
		run(t, ctx, "option "+to, chromedp.WaitReady(chromedp.CSS(`#handover-to option[value="`+to+`"]`)))
		run(t, ctx, "select "+to, chromedp.Evaluate[chromedp.Void](`document.getElementById('handover-to').value = '`+to+`'`))
		run(t, ctx, "hand over", chromedp.Click(chromedp.ID("handover")))
		run(t, ctx, "confirm", chromedp.WaitVisible(chromedp.ID("confirm-ok")), chromedp.Click(chromedp.ID("confirm-ok")))
		waitText(t, ctx, "#handover-result", "Leader is now "+to, 20*time.Second)
		waitText(t, ctx, "#cluster-leader", to, 10*time.Second)
	}
	if strings.TrimSpace(text(t, ctx, "#cluster-leader")) == "n1" {
		handover("n3")
	}
	handover("n1")
	screenshot(t, ctx, "cluster")
	killed := time.Now()
	cc.stop("n1", syscall.SIGKILL)
	var leader string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if s, err := chromedp.Run(tctx, chromedp.Text(chromedp.ID("cluster-leader"))); err == nil {
			leader = s
		}
		cancel()
		if leader == "n2" || leader == "n3" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if leader != "n2" && leader != "n3" {
		t.Fatalf("the cluster page on n2 shows leader %q after n1 was killed", leader)
	}
	t.Logf("the page on n2 showed the new leader %s %s after n1 was killed", leader, time.Since(killed).Round(100*time.Millisecond))
	waitText(t, ctx, `tr[data-node="n1"]`, "unreachable", 10*time.Second)
	screenshot(t, ctx, "cluster-failover")
	run(t, ctx, "create after the failover",
		chromedp.Navigate(base+"/#/new"),
		chromedp.WaitVisible(chromedp.ID("new-name")),
		chromedp.SendKeys(chromedp.ID("new-name"), "after-failover"),
		chromedp.Click(chromedp.ID("new-submit")),
		chromedp.WaitVisible(chromedp.ID("new-config")),
		chromedp.Click(chromedp.ID("new-done")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-peer="after-failover"]`)))

	// A phone-sized screen: the list turns into cards.
	if os.Getenv("RAFTGUARD_SCREENSHOTS") != "" {
		run(t, ctx, "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		screenshot(t, ctx, "phone")
		run(t, ctx, "desktop", chromedp.EmulateReset())
	}

	// Logout ends the session on every node.
	run(t, ctx, "log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("token")))
	for _, id := range []string{"n2", "n3"} {
		browser := apiclient.Client{Base: "https://" + cc.api[id], HTTP: cc.http, Header: http.Header{"Cookie": {(&http.Cookie{Name: session.Name, Value: session.Value}).String()}}}
		poll(t, 5*time.Second, func() error {
			resp, err := browser.Send(context.Background(), "GET", "/v1/peers", nil, nil)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				return fmt.Errorf("%s accepts the session after logout: %d", id, resp.StatusCode)
			}
			return nil
		})
	}
	if dialogs.Load() != 0 {
		t.Fatalf("%d JavaScript dialogs opened", dialogs.Load())
	}
	t.Logf("browser suite took %s", time.Since(began).Round(time.Millisecond))
}
