package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrKilled is returned (wrapped) by Stop when the process did not exit
// within the timeout after its signal and was killed.
var ErrKilled = errors.New("netlab: process did not stop in time and was killed")

// outputCap bounds the output a Proc keeps in memory; past it the oldest
// half is dropped. A LogFile keeps everything.
const outputCap = 8 << 20

// StartOptions are the optional settings of Host.StartWith.
type StartOptions struct {
	// LogFile, if set, receives a copy of the output (appended, 0600).
	LogFile string
	// Env is added to the environment the process inherits.
	Env []string
	// Output, if set, receives a copy of the output as it arrives.
	Output io.Writer
	// Detach leaves out the parent-death signal, so that the process
	// outlives the program that started it (a lab kept running after
	// the demo exits). Close still ends it.
	Detach bool
}

// A Proc is a process the lab started in a host. Its output (stdout and
// stderr together) is kept in memory.
type Proc struct {
	desc string
	cmd  *exec.Cmd
	out  *tailBuffer
	logf *os.File
	done chan struct{}
	err  error // cmd.Wait's result; set before done is closed
}

// Start runs name in the background inside the host's namespace. The lab
// tracks the process and ends it on Close.
func (h *Host) Start(name string, args ...string) (*Proc, error) {
	return h.StartWith(StartOptions{}, name, args...)
}

// StartWith is Start with options.
//
// The process runs in its own process group (a Ctrl-C at the terminal
// reaches the program using the lab, which then stops it in order), and,
// unless o.Detach, is killed by the kernel if the program that started it
// dies (a test binary that panics or times out leaves no process behind).
func (h *Host) StartWith(o StartOptions, name string, args ...string) (*Proc, error) {
	l := h.lab
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.SysProcAttr = procAttr(o.Detach)
	cmd.WaitDelay = 2 * time.Second
	p := &Proc{
		desc: fmt.Sprintf("%s in %s", strings.Join(append([]string{name}, args...), " "), h.name),
		cmd:  cmd,
		out:  &tailBuffer{},
		done: make(chan struct{}),
	}
	writers := []io.Writer{p.out}
	if o.LogFile != "" {
		f, err := os.OpenFile(o.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("netlab: opening log of %s: %w", p.desc, err)
		}
		p.logf = f
		writers = append(writers, f)
	}
	if o.Output != nil {
		writers = append(writers, o.Output)
	}
	w := io.MultiWriter(writers...)
	cmd.Stdout, cmd.Stderr = w, w

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		p.closeLog()
		return nil, ErrClosed
	}
	// Registered under the lock: Close either sees it or refuses it.
	err := spawn(cmd)
	if err == nil {
		l.procs[p] = true
	}
	l.mu.Unlock()
	if err != nil {
		p.closeLog()
		return nil, fmt.Errorf("netlab: starting %s: %w", p.desc, err)
	}
	go p.wait()
	return p, nil
}

func (p *Proc) wait() {
	err := p.cmd.Wait()
	p.err = err
	p.closeLog()
	close(p.done)
}

func (p *Proc) closeLog() {
	if p.logf != nil {
		p.logf.Close()
	}
}

// String describes the process: its command line and host.
func (p *Proc) String() string { return p.desc }

// PID returns the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output returns what the process has written so far (stdout and stderr
// interleaved; only the latest part of a very long output).
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns its exit error (nil for
// a zero exit status).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// ExitCode returns the exit status, or -1 while it runs or if a signal
// ended it.
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the process (by PID; a no-op once it has exited).
func (p *Proc) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("netlab: signalling %s: %w", p.desc, err)
	}
	return nil
}

// Stop sends sig and waits up to timeout for the process to exit; then it
// kills it and returns ErrKilled. It returns nil once the process has
// exited in time, whatever its exit status (see Wait and ExitCode).
func (p *Proc) Stop(sig syscall.Signal, timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := p.Signal(sig); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s (pid %d) after %v", ErrKilled, p.desc, p.PID(), timeout)
}

// Kill kills the process (SIGKILL) and waits for it to be reaped.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("netlab: killing %s: %w", p.desc, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("netlab: %s (pid %d) not reaped 10s after SIGKILL", p.desc, p.PID())
	}
}

// tailBuffer is a concurrency-safe buffer that keeps the latest outputCap
// bytes or so.
type tailBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if t.b.Len() > outputCap {
		t.b.Next(t.b.Len() - outputCap/2)
		rest := bytes.Clone(t.b.Bytes())
		t.b.Reset()
		t.b.WriteString("[... earlier output dropped ...]\n")
		t.b.Write(rest)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}

// spawner starts processes from one OS thread that lives as long as the
// program. A child's parent-death signal fires when the thread that forked
// it ends, and the Go runtime ends the threads of goroutines that exit
// while locked to them (as namespace-switching code does); this thread
// never ends, so the signal fires only when the program dies.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked; this goroutine never returns
			for r := range spawner.reqs {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawner.reqs <- spawnReq{cmd, errc}
	return <-errc
}
