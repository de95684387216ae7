package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one process this tool started.
type proc struct {
	name   string
	bin    string
	args   []string
	logAt  string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // what Wait returned; read once exited is closed
}

// procs keeps every process this tool starts, so that all of them are
// stopped at the end, whatever happened.
type procs struct {
	mu  sync.Mutex
	all []*proc
}

// start runs bin with args, its output appended to logAt.
func (ps *procs) start(name, logAt, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, bin: bin, args: args, logAt: logAt}
	if err := ps.launch(p); err != nil {
		return nil, err
	}
	return p, nil
}

// restart starts p again with the same command line.
func (ps *procs) restart(p *proc) error { return ps.launch(p) }

func (ps *procs) launch(p *proc) error {
	if err := os.MkdirAll(filepath.Dir(p.logAt), 0o700); err != nil {
		return err
	}
	log, err := os.OpenFile(p.logAt, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a Ctrl-C in the terminal reaches this tool
	// only, which stops the processes in order; and killed with this tool
	// if it dies without stopping them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	p.cmd, p.log, p.exited, p.err = cmd, log, make(chan struct{}), nil
	go func(exited chan struct{}) {
		p.err = cmd.Wait()
		log.Close()
		close(exited)
	}(p.exited)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, q := range ps.all {
		if q == p {
			return nil
		}
	}
	ps.all = append(ps.all, p)
	return nil
}

// running tells whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to grace for the process to end, then
// kills it.
func (p *proc) stop(grace time.Duration) {
	if p.cmd == nil || !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// stopAll stops every process still running, all at once.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := append([]*proc(nil), ps.all...)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(15 * time.Second)
		}()
	}
	wg.Wait()
}

// perProc reads one measure of each of procs, in order.
func perProc[T any](procs []*proc, read func(*proc) (T, error)) ([]T, error) {
	out := make([]T, 0, len(procs))
	for _, p := range procs {
		v, err := read(p)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// rss reads the resident set size of the process, in bytes.
func (p *proc) rss() (int64, error) { return p.status("VmRSS") }

// peakRSS reads the largest resident set size the process had, in bytes.
func (p *proc) peakRSS() (int64, error) { return p.status("VmHWM") }

// status reads a field of /proc/PID/status given in kB, in bytes.
func (p *proc) status(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s of %s: %w", field, p.name, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s for %s", field, p.name)
}

// freePorts returns n loopback ports that nothing listened on just now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// poll calls cond every interval until it holds, ctx ends or timeout
// passes; it returns cond's last error on timeout.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting %v for %s: %w (last: %v)", timeout, what, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// run runs a command to its end and returns its standard output.
func run(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
