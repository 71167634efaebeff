//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// uapiDir is where wireguard-go's control sockets live (one directory for
// every network namespace).
const uapiDir = "/var/run/wireguard"

// Cleanup removes what a Device named name leaves behind when its process
// ends without Close (killed, crashed): the link, when it is a WireGuard or
// TUN link (a kernel WireGuard link outlives its process, up and keyed);
// the kernel device's source routing (its policy rules and routing table);
// and the userspace device's control socket file when nothing answers on
// it. It returns what it removed; finding nothing is not an error, so it
// may run any number of times. A link of another type with that name is
// not ours: it is left alone and reported as an error.
//
// Call it only when no process of this node runs (a starting node before
// it opens its interface, or `raftguard cleanup` after the process ended).
func Cleanup(name string) (removed []string, err error) {
	var errs []error
	if name != "" {
		exists, typ, err := linkExists(name)
		switch {
		case err != nil:
			errs = append(errs, err)
		case exists && typ != "wireguard" && typ != "tuntap" && typ != "tun":
			errs = append(errs, fmt.Errorf("dataplane: cleanup: link %s is of type %q, not a WireGuard or TUN link: left alone", name, typ))
		case exists:
			l, err := netlink.LinkByName(name)
			if err == nil {
				err = netlink.LinkDel(l)
			}
			var nf netlink.LinkNotFoundError
			switch {
			case err == nil:
				removed = append(removed, fmt.Sprintf("%s link %s", typ, name))
			case errors.As(err, &nf), errors.Is(err, unix.ENODEV):
			default:
				errs = append(errs, fmt.Errorf("dataplane: cleanup: delete link %s: %w", name, err))
			}
		}
	}
	if changed, _, err := syncSourceRouting(nil, false, 0); err != nil {
		errs = append(errs, fmt.Errorf("dataplane: cleanup: remove source routing: %w", err))
	} else if changed {
		removed = append(removed, fmt.Sprintf("source routing (fwmark %#x rules, table %d)", sourceMark, sourceTable))
	}
	if changed, err := syncFence(nil, nil); err != nil {
		errs = append(errs, fmt.Errorf("dataplane: cleanup: %w", err))
	} else if changed {
		removed = append(removed, "source fence (nftables table inet "+fenceTable+")")
	}
	if name != "" {
		sock := filepath.Join(uapiDir, name+".sock")
		if stale, err := staleSocket(sock); err != nil {
			errs = append(errs, err)
		} else if stale {
			if err := os.Remove(sock); err == nil {
				removed = append(removed, "control socket "+sock)
			} else if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("dataplane: cleanup: %w", err))
			}
		}
	}
	return removed, errors.Join(errs...)
}

// staleSocket reports whether the Unix socket file path exists and nothing
// listens on it.
func staleSocket(path string) (bool, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("dataplane: cleanup: %w", err)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return false, nil
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT), nil
}
