//go:build linux

package dataplane

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
)

// Open creates the WireGuard interface name and returns it, down and
// unconfigured. kind is KindAuto (the kernel module if the kernel has it,
// else the userspace device), KindKernel or KindUserspace. A kernel
// WireGuard link left over by a crash under the same name is replaced; any
// other existing link of that name is an error.
func Open(name, kind string, log *slog.Logger) (Device, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n:%") {
		return nil, fmt.Errorf("%w: interface name %q (1-15 characters, no '/', ':', '%%' or space)", ErrInvalidConfig, name)
	}
	switch kind {
	case KindAuto:
		if KernelSupported() {
			return openKernel(name, log)
		}
		return openUserspace(name, log)
	case KindKernel:
		if !KernelSupported() {
			return nil, fmt.Errorf("%w: the kernel has no WireGuard support (use the userspace data plane)", ErrUnsupported)
		}
		return openKernel(name, log)
	case KindUserspace:
		return openUserspace(name, log)
	default:
		return nil, fmt.Errorf("%w: data plane kind %q (want %q, %q or %q)", ErrInvalidConfig, kind, KindAuto, KindKernel, KindUserspace)
	}
}

// KernelSupported reports whether the kernel can create WireGuard links. It
// asks once per process: the generic netlink family "wireguard" exists, or
// a throwaway link of type wireguard can be created (and is deleted again).
func KernelSupported() bool { return kernelSupported() }

var kernelSupported = sync.OnceValue(func() bool {
	if _, err := netlink.GenlFamilyGet("wireguard"); err == nil {
		return true
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rgprobe" + hex.EncodeToString(b[:])
	if err := netlink.LinkAdd(&netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: name}, LinkType: "wireguard"}); err != nil {
		return false
	}
	if l, err := netlink.LinkByName(name); err == nil {
		_ = netlink.LinkDel(l)
	}
	return true
})
