package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/raftguard/raftguard/internal/apiclient"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/pki"
	"github.com/raftguard/raftguard/internal/wgkey"
)

// ErrJoinRefused: an existing member refused the join (bad token, foreign
// CA). Retrying will not help.
var ErrJoinRefused = errors.New("join refused")

// prepareBootstrap creates everything a new cluster needs and keeps the
// init command in the data dir until the Raft log holds it.
func (a *Agent) prepareBootstrap(imp *bootstrapImport) error {
	var settings fsm.Settings
	if imp != nil {
		settings = imp.settings
		if err := imp.checkNodeRoutes(fsm.Node{RaftAddr: a.node.RaftAdvertise, APIAddr: a.node.APIAdvertise}); err != nil {
			return err
		}
	} else {
		var err error
		if settings, err = settingsFromFlags(a.cfg.Cluster); err != nil {
			return err
		}
		kp, err := wgkey.Generate()
		if err != nil {
			return err
		}
		settings.PrivateKey, settings.PublicKey = kp.Private, kp.Public
	}
	if err := fsm.ValidateSettings(&settings); err != nil {
		return fmt.Errorf("cluster settings: %w", err)
	}
	if w := NATWarning(settings); w != "" {
		a.log.Warn(w)
	}
	if err := fsm.ValidateServerKeyPair(settings.PrivateKey, settings.PublicKey); err != nil {
		return fmt.Errorf("cluster settings: %w", err)
	}
	now := time.Now()
	ca, err := pki.NewCA("raftguard cluster CA", now)
	if err != nil {
		return err
	}
	keyPEM, key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, a.node.NodeID)
	if err != nil {
		return err
	}
	// The VIPs are in the certificate too, so API clients may use them.
	ips := a.certIPs()
	for _, v := range settings.VIPs {
		ips = append(ips, net.IP(v.Addr().AsSlice()))
	}
	cert, err := ca.SignNode(csr, a.node.NodeID, ips, []string{a.node.NodeID}, now)
	if err != nil {
		return err
	}
	joinTok, err := pki.NewJoinToken(ca.Fingerprint())
	if err != nil {
		return err
	}
	adminTok, err := pki.NewAdminToken()
	if err != nil {
		return err
	}
	init := fsm.Init{
		Settings:   settings,
		CACertPEM:  string(ca.CertPEM),
		CAKeyPEM:   string(ca.KeyPEM),
		JoinToken:  joinTok,
		AdminToken: fsm.AdminToken{ID: "admin", Name: "bootstrap", Hash: pki.HashToken(adminTok)},
		At:         now.UTC(),
	}
	dir := a.cfg.DataDir
	if err := writeJSONFile(filepath.Join(dir, pendingInitFile), &init); err != nil {
		return fmt.Errorf("save bootstrap state: %w", err)
	}
	if imp != nil && len(imp.peers) > 0 {
		peers := fsm.AddPeers{Peers: imp.peers, At: init.At}
		if err := writeJSONFile(filepath.Join(dir, pendingImportFile), &peers); err != nil {
			return fmt.Errorf("save the imported peers: %w", err)
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, adminTokenFile), []byte(adminTok+"\n")); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, joinTokenFile), []byte(joinTok+"\n")); err != nil {
		return err
	}
	a.ident = &pki.Identity{CACertPEM: ca.CertPEM, CertPEM: cert, KeyPEM: keyPEM}
	if err := a.ident.Save(filepath.Join(dir, tlsDirName)); err != nil {
		return fmt.Errorf("save TLS identity: %w", err)
	}
	if imp != nil {
		fmt.Fprintf(a.cfg.Stderr, "\nraftguard: taking over %s: its key pair (public key %s), listen port %d, pools and %d peers.\n",
			a.cfg.Cluster.Import, settings.PublicKey, settings.ListenPort, len(imp.peers))
	}
	fmt.Fprintf(a.cfg.Stderr, `
raftguard: created a new cluster with node %s.
These tokens are shown once; they are also saved (mode 0600) in %s.

  admin token: %s
  join token:  %s

Join more servers with:
  raftguard server --join %s --token <join token> [--advertise ADDR]

`, a.node.NodeID, dir, adminTok, joinTok, a.node.APIAdvertise)
	return nil
}

// finishBootstrap applies the stored init command once this node leads.
func (a *Agent) finishBootstrap(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var init fsm.Init
	if err := json.Unmarshal(b, &init); err != nil {
		return fmt.Errorf("%s is damaged: %w", path, err)
	}
	// A fresh cluster runs cluster version 1 until its first node raises
	// it: the VIP mode (protocol 6) follows the init as a settings change.
	mode := init.Settings.VIPMode
	init.Settings.VIPMode = ""
	if _, err := a.Apply(fsm.CmdInit, init); err != nil && !errors.Is(err, fsm.ErrAlreadyInitialized) {
		return fmt.Errorf("initialize cluster: %w", err)
	}
	a.log.Info("cluster initialized", "node_id", a.node.NodeID)
	if mode != "" && a.state.Settings().VIPMode != mode {
		if err := a.raiseClusterVersion(); err != nil {
			return err
		}
		if _, err := a.Apply(fsm.CmdUpdateSettings, fsm.UpdateSettings{VIPMode: &mode, At: time.Now().UTC()}); err != nil {
			return fmt.Errorf("set the VIP mode: %w", err)
		}
		a.log.Info("VIP mode set", "vip_mode", mode)
	}
	if err := a.finishImport(); err != nil {
		return err
	}
	return os.Remove(path)
}

// requestCertificate is join step one: over TLS pinned to the CA named in
// the token, prove the token's secret and get a node certificate.
func (a *Agent) requestCertificate(ctx context.Context) error {
	if a.cfg.Token == "" {
		return errors.New("--join needs --token (print it on a member with: raftguard cluster token)")
	}
	fp, _, err := pki.ParseJoinToken(a.cfg.Token)
	if err != nil {
		return fmt.Errorf("--token: %w", err)
	}
	keyPEM, key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, a.node.NodeID)
	if err != nil {
		return err
	}
	req := httpapi.JoinCertRequest{NodeID: a.node.NodeID, CSR: string(csr), Token: a.cfg.Token}
	for _, ip := range a.certIPs() {
		req.IPs = append(req.IPs, ip.String())
	}
	var out httpapi.JoinCertResponse
	if err := a.callMembers(ctx, pki.PinnedClientConfig(fp), "/v1/cluster/join/certificate", req, &out); err != nil {
		return err
	}
	a.ident = &pki.Identity{CACertPEM: []byte(out.CACert), CertPEM: []byte(out.Cert), KeyPEM: keyPEM}
	if got, err := a.ident.CAFingerprint(); err != nil || got != fp {
		return fmt.Errorf("%w: the CA sent by the cluster does not match the join token", ErrJoinRefused)
	}
	if err := writeFileAtomic(filepath.Join(a.cfg.DataDir, adminTokenFile), []byte(out.AdminToken+"\n")); err != nil {
		return err
	}
	if err := a.ident.Save(filepath.Join(a.cfg.DataDir, tlsDirName)); err != nil {
		return fmt.Errorf("save TLS identity: %w", err)
	}
	return nil
}

// joinCluster is join step two: ask the leader (through any member) to add
// this node as a voter. Raft is already listening, so the leader can
// replicate to it at once.
func (a *Agent) joinCluster(ctx context.Context) error {
	tc, err := a.ident.PeerClientConfig()
	if err != nil {
		return err
	}
	req := httpapi.JoinRequest{NodeID: a.node.NodeID, RaftAddr: a.node.RaftAdvertise, APIAddr: a.node.APIAdvertise, Token: a.cfg.Token}
	var out httpapi.JoinResponse
	if err := a.callMembers(ctx, tc, "/v1/cluster/join", req, &out); err != nil {
		return err
	}
	a.log.Info("joined the cluster", "leader", out.LeaderID)
	return nil
}

// callMembers posts req to each --join address in turn until one answers,
// retrying for up to 30 seconds while members are unreachable or without a
// leader. A refusal (bad token, foreign CA) ends at once.
func (a *Agent) callMembers(ctx context.Context, tc *tls.Config, path string, req, out any) error {
	// No client timeout: each call is bounded by its context instead, so
	// that the join's writes carry no deadline header.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for attempt := 0; ; attempt++ {
		for _, addr := range a.cfg.Join {
			addr = hostPortDefault(trimScheme(addr), DefaultAPIPort)
			err := postJSON(ctx, client, "https://"+addr, path, req, out)
			if err == nil {
				return nil
			}
			if errors.Is(err, ErrJoinRefused) || errors.Is(err, pki.ErrCAMismatch) {
				return fmt.Errorf("join via %s: %w", addr, err)
			}
			last = fmt.Errorf("join via %s: %w", addr, err)
			a.log.Warn("join attempt failed", "member", addr, "err", err)
		}
		if time.Now().After(deadline) {
			return last
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(min(attempt+1, 5)) * 200 * time.Millisecond):
		}
	}
}

// joinCallTimeout bounds one join call.
const joinCallTimeout = 15 * time.Second

func postJSON(ctx context.Context, client *http.Client, base, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, joinCallTimeout)
	defer cancel()
	c := apiclient.Client{Base: base, HTTP: client, Header: http.Header{httpapi.HeaderProtocol: {strconv.Itoa(fsm.ProtocolVersion)}}}
	_, err := c.Do(ctx, http.MethodPost, path, in, out)
	var ae *apiclient.Error
	var recErr tls.RecordHeaderError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		msg := ae.Message
		if msg == "" {
			msg = fmt.Sprintf("%d %s", ae.Status, http.StatusText(ae.Status))
		}
		switch ae.Status {
		case http.StatusUnauthorized, http.StatusBadRequest, http.StatusForbidden, http.StatusConflict, http.StatusTooManyRequests:
			return fmt.Errorf("%w: %s", ErrJoinRefused, msg)
		}
		if ae.Code == "upgrade_required" {
			return fmt.Errorf("%w: %s", ErrJoinRefused, msg)
		}
		return errors.New(msg)
	case errors.As(err, &recErr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%w: the member did not answer with TLS (is it a raftguard API port?)", ErrJoinRefused)
	case errors.Is(err, pki.ErrCAMismatch):
		return fmt.Errorf("%w: the member's TLS certificate is not from the CA named in the token (a token of another cluster?)", ErrJoinRefused)
	}
	return err
}
