package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lbd/lbd/config"
)

// lbdProcess is one lbd daemon run as a child process.
type lbdProcess struct {
	cmd       *exec.Cmd
	dataURL   string
	adminURL  string
	logPath   string
	exited    chan struct{}
	exitError error
	client    *http.Client
}

// baseConfig is lbd's built-in defaults over the given backends, with both
// listeners on kernel-chosen loopback ports and the access log off (it would
// only cost CPU the measurement shares).
func baseConfig(backends []string) *config.Config {
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode = "off"
	for _, u := range backends {
		cfg.Backends = append(cfg.Backends, config.Backend{URL: u, Weight: 1, Protocol: "http1"})
	}
	return cfg
}

// startLBD writes cfg into dir and starts the daemon, returning once it has
// logged its addresses (its listeners are open then).
func startLBD(ctx context.Context, bin, dir string, cfg *config.Config) (*lbdProcess, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("generated config: %w", err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return nil, err
	}
	p := &lbdProcess{logPath: filepath.Join(dir, "lbd.log"), exited: make(chan struct{}),
		client: &http.Client{Timeout: 5 * time.Second}}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	p.cmd = exec.Command(bin, "-config", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = logFile, io.MultiWriter(logFile, pw)
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.exitError = p.cmd.Wait()
		logFile.Close()
		pw.Close()
		close(p.exited)
	}()
	addrs := make(chan [2]string, 1)
	go func() { // the daemon's JSON log says where it listens; then drain the pipe
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, Listen, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "lbd started" {
				addrs <- [2]string{line.Listen, line.Admin}
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case a := <-addrs:
		p.dataURL, p.adminURL = "http://"+loopback(a[0]), "http://"+loopback(a[1])
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("lbd exited at start (%v); see %s", p.exitError, p.logPath)
	case <-timeout.C:
	case <-ctx.Done():
	}
	p.stop()
	return nil, fmt.Errorf("lbd did not start within 10s; see %s", p.logPath)
}

// loopback turns a listener address into one a client can dial on loopback.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// stop sends SIGTERM and waits for the daemon, killing it after 20s.
func (p *lbdProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// backendView is one entry of GET /admin/backends.
type backendView struct {
	URL         string `json:"url"`
	State       string `json:"state"`
	Breaker     string `json:"breaker"`
	Requests    uint64 `json:"requests"`
	Failures    uint64 `json:"failures"`
	Ejections   int    `json:"ejections"`
	BreakerTrip int    `json:"breaker_trips"`
}

// inRotation reports whether picks can reach the backend.
func (b backendView) inRotation() bool {
	return (b.State == "healthy" || b.State == "warming") && b.Breaker != "open"
}

// backends reads GET /admin/backends, by URL.
func (p *lbdProcess) backends(ctx context.Context) (map[string]backendView, error) {
	var doc struct {
		Backends []backendView `json:"backends"`
	}
	if err := p.getJSON(ctx, "/admin/backends", &doc); err != nil {
		return nil, err
	}
	out := make(map[string]backendView, len(doc.Backends))
	for _, b := range doc.Backends {
		out[b.URL] = b
	}
	return out, nil
}

func (p *lbdProcess) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.adminURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// metricSum adds up every sample of the metric family name on /metrics.
func (p *lbdProcess) metricSum(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.adminURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// waitFor polls cond every 10ms until it holds, ctx ends or limit passes,
// and returns how long it took from since.
func waitFor(ctx context.Context, since time.Time, limit time.Duration, cond func() (bool, error)) (time.Duration, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(since), nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return 0, fmt.Errorf("not within %v", limit)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
