package httpapi

import (
	"net/http"
	"net/netip"

	"github.com/raftguard/raftguard/fsm"
)

// SettingsView is the answer of GET and PATCH /v1/cluster/settings: the
// cluster settings, never the server's private key.
type SettingsView struct {
	PublicKey        string         `json:"public_key"`
	ListenPort       int            `json:"listen_port"`
	Pool             netip.Prefix   `json:"pool"`
	Pool6            netip.Prefix   `json:"pool6,omitzero"`
	VIPs             []netip.Prefix `json:"vips"`
	Endpoint         string         `json:"endpoint"`
	ClientAllowedIPs []netip.Prefix `json:"client_allowed_ips"`
	ClientDNS        []string       `json:"client_dns"`
	MTU              int            `json:"mtu"`
	Keepalive        int            `json:"keepalive"`
	NAT              bool           `json:"nat"`
	VIPMode          string         `json:"vip_mode"`
}

func viewSettings(s fsm.Settings) SettingsView {
	v := SettingsView{
		PublicKey: s.PublicKey, ListenPort: s.ListenPort, Pool: s.Pool, Pool6: s.Pool6, VIPs: s.VIPs,
		Endpoint: s.Endpoint, ClientAllowedIPs: s.ClientAllowedIPs, ClientDNS: s.ClientDNS, MTU: s.MTU, Keepalive: s.Keepalive,
		NAT:     s.NAT,
		VIPMode: s.Mode(),
	}
	if v.ClientDNS == nil {
		v.ClientDNS = []string{}
	}
	return v
}

// SettingsPatch is the body of PATCH /v1/cluster/settings: the settings to
// change; absent fields stay as they are. An empty list clears
// client_dns.
type SettingsPatch struct {
	Endpoint         *string   `json:"endpoint,omitempty"`
	ClientAllowedIPs *[]string `json:"client_allowed_ips,omitempty"`
	ClientDNS        *[]string `json:"client_dns,omitempty"`
	MTU              *int      `json:"mtu,omitempty"`
	Keepalive        *int      `json:"keepalive,omitempty"`
	NAT              *bool     `json:"nat,omitempty"`
	VIPMode          *string   `json:"vip_mode,omitempty"`
}

func (s *Server) getSettings(w http.ResponseWriter, r *request) error {
	writeJSON(w, http.StatusOK, viewSettings(s.b.State().Settings()))
	return nil
}

func (s *Server) updateSettings(w http.ResponseWriter, r *request) error {
	var p SettingsPatch
	if err := decode(r, &p); err != nil {
		return err
	}
	svc, err := s.service()
	if err != nil {
		return err
	}
	st, err := svc.UpdateSettings(p)
	if err != nil {
		return err
	}
	s.auditEvent(r, "update-settings", "", "ok")
	s.wrote(w)
	writeJSON(w, http.StatusOK, viewSettings(st))
	return nil
}
