package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VRRPConfig is one keepalived VRRP instance that moves virtual addresses
// between hosts and brings a network interface up on the master and down
// everywhere else: the classic keepalived recipe for an active/standby
// WireGuard server.
type VRRPConfig struct {
	// Instance names the vrrp_instance; "VI_1" if empty.
	Instance string
	// Interface carries VRRP and the virtual addresses; "eth0" if empty.
	Interface string
	// RouterID is the virtual_router_id, 1 to 255, the same on every
	// member.
	RouterID int
	// Priority is 1 to 254; the highest priority wins an election.
	Priority int
	// VIPs are the virtual_ipaddress entries.
	VIPs []netip.Prefix
	// AdvertInterval is advert_int; zero keeps keepalived's default
	// (one second).
	AdvertInterval time.Duration
	// NoPreempt keeps a running master in place when a member of higher
	// priority comes back (the instance then starts as BACKUP).
	NoPreempt bool
	// UnicastPeers, if set, sends adverts to these addresses instead of
	// the VRRP multicast group.
	UnicastPeers []netip.Addr
	// NotifyLink is the interface the notify script sets up on MASTER and
	// down on any other state (BACKUP, FAULT, STOP); none if empty.
	NotifyLink string
}

// Keepalived is a keepalived process (VRRP only, in the foreground) in a
// host, with its configuration, notify script and pid files in its own
// directory so that several run side by side.
type Keepalived struct {
	host *Host
	dir  string
	proc *Proc
}

// keepalivedStateFile is where the notify script records the latest state.
const keepalivedStateFile = "state"

// validate checks a VRRP configuration and fills in defaults.
func (c *VRRPConfig) validate() error {
	if c.Instance == "" {
		c.Instance = "VI_1"
	}
	if c.Interface == "" {
		c.Interface = "eth0"
	}
	if !validIfName.MatchString(c.Instance) {
		return fmt.Errorf("netlab: invalid VRRP instance name %q", c.Instance)
	}
	for _, n := range []string{c.Interface, c.NotifyLink} {
		if n != "" && (len(n) > 15 || !validIfName.MatchString(n)) {
			return fmt.Errorf("netlab: invalid interface name %q", n)
		}
	}
	if c.RouterID < 1 || c.RouterID > 255 {
		return fmt.Errorf("netlab: VRRP router id %d out of 1..255", c.RouterID)
	}
	if c.Priority < 1 || c.Priority > 254 {
		return fmt.Errorf("netlab: VRRP priority %d out of 1..254", c.Priority)
	}
	if len(c.VIPs) == 0 {
		return errors.New("netlab: VRRP instance without a virtual address")
	}
	for _, v := range c.VIPs {
		if !v.IsValid() {
			return errors.New("netlab: invalid VRRP virtual address")
		}
	}
	for _, a := range c.UnicastPeers {
		if !a.IsValid() {
			return errors.New("netlab: invalid VRRP unicast peer")
		}
	}
	if c.AdvertInterval < 0 || c.AdvertInterval > 255*time.Second {
		return fmt.Errorf("netlab: VRRP advert interval %v out of range", c.AdvertInterval)
	}
	return nil
}

// keepalivedConf renders keepalived.conf for one instance whose notify
// script is at script.
func keepalivedConf(c VRRPConfig, script string) (string, error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	// Scripts run as root (there is no keepalived_script user in a lab).
	b.WriteString("global_defs {\n\tscript_user root\n}\n\n")
	fmt.Fprintf(&b, "vrrp_instance %s {\n", c.Instance)
	b.WriteString("\tstate BACKUP\n") // elected, never assumed
	fmt.Fprintf(&b, "\tinterface %s\n", c.Interface)
	fmt.Fprintf(&b, "\tvirtual_router_id %d\n", c.RouterID)
	fmt.Fprintf(&b, "\tpriority %d\n", c.Priority)
	if c.AdvertInterval > 0 {
		fmt.Fprintf(&b, "\tadvert_int %s\n", strconv.FormatFloat(c.AdvertInterval.Seconds(), 'f', -1, 64))
	}
	if c.NoPreempt {
		b.WriteString("\tnopreempt\n")
	}
	if len(c.UnicastPeers) > 0 {
		b.WriteString("\tunicast_peer {\n")
		for _, a := range c.UnicastPeers {
			fmt.Fprintf(&b, "\t\t%s\n", a)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("\tvirtual_ipaddress {\n")
	for _, v := range c.VIPs {
		fmt.Fprintf(&b, "\t\t%s dev %s\n", v, c.Interface)
	}
	b.WriteString("\t}\n")
	fmt.Fprintf(&b, "\tnotify %s\n", script)
	fmt.Fprintf(&b, "\tnotify_stop \"%s STOP\"\n", script)
	b.WriteString("}\n")
	return b.String(), nil
}

// notifyScript renders the notify script: keepalived calls it with
// TYPE NAME STATE PRIORITY on each transition (and with STOP alone on
// shutdown). It sets link up on MASTER, down otherwise, and records the
// state and the time in stateFile.
func notifyScript(link, stateFile string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString("# keepalived notify: TYPE NAME STATE PRIORITY, or STOP alone from notify_stop\n")
	b.WriteString("if [ $# -ge 3 ]; then state=$3; else state=$1; fi\n")
	if link != "" {
		fmt.Fprintf(&b, "case \"$state\" in\nMASTER) ip link set dev %[1]s up ;;\n*) ip link set dev %[1]s down ;;\nesac\n", link)
	}
	fmt.Fprintf(&b, "echo \"$state $(date +%%s.%%N)\" > %s.tmp && mv %[1]s.tmp %[1]s\n", stateFile)
	return b.String()
}

// StartKeepalived writes keepalived.conf and its notify script into dir
// (which must exist and be writable by root only) and runs keepalived in
// the host: VRRP only, in the foreground, logging to its output, with its
// own pid files and without respawning its VRRP process (so that killing
// the pair by PID leaves nothing behind). Every instance starts as BACKUP.
func (h *Host) StartKeepalived(dir string, c VRRPConfig) (*Keepalived, error) {
	script := filepath.Join(dir, "notify.sh")
	conf, err := keepalivedConf(c, script)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(script, []byte(notifyScript(c.NotifyLink, filepath.Join(dir, keepalivedStateFile))), 0o700); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(dir, keepalivedStateFile))
	p, err := h.StartWith(StartOptions{LogFile: filepath.Join(dir, "keepalived.log")}, "keepalived",
		"--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp", "--dont-respawn",
		"--use-file", cfgPath,
		"--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"),
		"--checkers_pid", filepath.Join(dir, "checkers.pid"),
		"--bfd_pid", filepath.Join(dir, "bfd.pid"))
	if err != nil {
		return nil, err
	}
	return &Keepalived{host: h, dir: dir, proc: p}, nil
}

// Proc returns keepalived's parent process.
func (k *Keepalived) Proc() *Proc { return k.proc }

// Dir returns the directory of its configuration, script and pid files.
func (k *Keepalived) Dir() string { return k.dir }

// State returns the latest state the notify script recorded (MASTER,
// BACKUP, FAULT or STOP), or "" before the first transition.
func (k *Keepalived) State() string {
	st, _ := k.Transition()
	return st
}

// Transition returns the latest state the notify script recorded and when
// the script ran; "" and the zero time before the first transition.
func (k *Keepalived) Transition() (state string, at time.Time) {
	b, err := os.ReadFile(filepath.Join(k.dir, keepalivedStateFile))
	if err != nil {
		return "", time.Time{}
	}
	return parseTransition(string(b))
}

// parseTransition reads the notify script's record: "STATE SECONDS.NANOS".
func parseTransition(s string) (string, time.Time) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return "", time.Time{}
	}
	var at time.Time
	if len(f) > 1 {
		sec, frac, _ := strings.Cut(f[1], ".")
		secs, err1 := strconv.ParseInt(sec, 10, 64)
		nanos, err2 := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		if err1 == nil && err2 == nil {
			at = time.Unix(secs, nanos)
		}
	}
	return f[0], at
}

// WaitState waits until the notify script has recorded state.
func (k *Keepalived) WaitState(state string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got := k.State()
		if got == state {
			return nil
		}
		if k.proc.Exited() {
			return fmt.Errorf("netlab: keepalived in %s exited (%v) in state %q\n%s", k.host.name, k.proc.Wait(), got, k.proc.Output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: keepalived in %s in state %q, not %s, after %v", k.host.name, got, state, timeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// VRRPPID returns the PID of keepalived's VRRP process, from its pid file.
func (k *Keepalived) VRRPPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(k.dir, "vrrp.pid"))
	if err != nil {
		return 0, fmt.Errorf("netlab: keepalived VRRP pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("netlab: keepalived VRRP pid file holds %q", b)
	}
	return pid, nil
}

// Kill ends keepalived as a crash would: SIGKILL to its VRRP process, then
// to its parent, so that it neither releases the virtual addresses nor
// sends a last advert, nor runs its notify script. Both are killed by PID
// (the VRRP process's from its pid file, checked to be a child of the
// parent this lab started).
func (k *Keepalived) Kill() error {
	if k.proc.Exited() {
		return nil
	}
	pid, err := k.VRRPPID()
	if err != nil {
		return err
	}
	if ppid, err := parentPID(pid); err != nil || ppid != k.proc.PID() {
		return fmt.Errorf("netlab: keepalived VRRP pid %d is not a child of %d (parent %d, %v)", pid, k.proc.PID(), ppid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("netlab: killing keepalived VRRP process %d: %w", pid, err)
	}
	return k.proc.Kill()
}

// Stop stops keepalived gracefully (SIGTERM, as a service manager does):
// the master sends a last advert with priority 0, releases the virtual
// addresses and runs its notify script. It waits up to timeout.
func (k *Keepalived) Stop(timeout time.Duration) error {
	return k.proc.Stop(syscall.SIGTERM, timeout)
}

// parentPID reads the parent PID of process pid from /proc.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("netlab: unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("netlab: unexpected /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[1])
}
