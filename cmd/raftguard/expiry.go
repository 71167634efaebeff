package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/raftguard/raftguard/httpapi"
)

// expiresUsage describes --expires.
const expiresUsage = "when the peer expires: a duration from now (30d, 2w, 12h, 90m), an RFC 3339 time, or never"

// expiryArg turns --expires into the API's expires_at: an RFC 3339 time
// (a duration counts from now) or "never".
func expiryArg(s string, now time.Time) (string, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "never") {
		return "never", nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Format(time.RFC3339), nil
	}
	var d time.Duration
	if n, unit := strings.TrimRight(s, "dw"), strings.TrimLeft(s, "0123456789"); (unit == "d" || unit == "w") && n != "" {
		v, err := strconv.Atoi(n)
		if err != nil {
			return "", fmt.Errorf("--expires %q: %w", s, err)
		}
		d = time.Duration(v) * 24 * time.Hour
		if unit == "w" {
			d *= 7
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return "", fmt.Errorf("--expires %q: want a duration (30d, 2w, 12h, 90m), an RFC 3339 time or never", s)
		}
	}
	if d <= 0 {
		return "", fmt.Errorf("--expires %q: the duration must be positive", s)
	}
	return now.Add(d).UTC().Format(time.RFC3339), nil
}

// peerSet changes a peer's settings (today: its expiry).
func peerSet(c *cli.Context) error {
	name, err := oneArg(c, "the peer's NAME")
	if err != nil {
		return err
	}
	if !c.IsSet("expires") {
		return fmt.Errorf("nothing to change: give --expires")
	}
	exp, err := expiryArg(c.String("expires"), time.Now())
	if err != nil {
		return err
	}
	return request(c, http.MethodPatch, peerPath(name), httpapi.UpdatePeerRequest{ExpiresAt: &exp}, formatPeer)
}
