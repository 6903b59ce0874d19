package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
)

// lbdProcess is one lbd daemon run as a child process, with the config of
// one mode of the scenario.
type lbdProcess struct {
	cmd       *exec.Cmd
	dataURL   string
	adminURL  string
	logPath   string
	exited    chan struct{}
	exitError error
}

// lbdConfig is the config file for a mode: "off" has no adaptive limit (the
// hard cap of admission.max_inflight only); "aimd" and "gradient2" turn the
// adaptive limit on with that algorithm and lbd's documented defaults, plus
// aimd.slow_start when slowStart is set.
func lbdConfig(mode string, backends []string, target time.Duration, maxInflight int, slowStart bool) ([]byte, error) {
	type backend struct {
		URL    string `json:"url"`
		Weight int    `json:"weight"`
	}
	bs := make([]backend, len(backends))
	for i, u := range backends {
		bs[i] = backend{URL: u, Weight: 1}
	}
	aimd := map[string]any{"enabled": false, "max_limit": maxInflight}
	switch mode {
	case "off":
	case "aimd", "gradient2":
		aimd = map[string]any{
			"enabled": true, "algorithm": mode, "target_latency": target.String(), "max_limit": maxInflight,
			"slow_start": slowStart,
		}
	default:
		return nil, fmt.Errorf("mode %q: want off, aimd or gradient2", mode)
	}
	return json.MarshalIndent(map[string]any{
		"listen":     "127.0.0.1:0",
		"admin":      map[string]any{"listen": "127.0.0.1:0"},
		"backends":   bs,
		"policy":     "lc",
		"warmup":     map[string]any{"duration": "0s"},
		"admission":  map[string]any{"max_inflight": maxInflight},
		"aimd":       aimd,
		"access_log": map[string]any{"mode": "off"},
	}, "", "  ")
}

// startLBD writes the config into dir and starts the daemon, returning once
// it logged its addresses (the listeners are open then).
func startLBD(ctx context.Context, bin, dir string, config []byte) (*lbdProcess, error) {
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, config, 0o600); err != nil {
		return nil, err
	}
	p := &lbdProcess{logPath: filepath.Join(dir, "lbd.log"), exited: make(chan struct{})}
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

// loopback turns a listener address such as "[::]:3030" or "127.0.0.1:3030"
// into one a client can dial on loopback.
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

// metric reads one unlabelled sample from the daemon's /metrics.
func (p *lbdProcess) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.adminURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("metric " + name + " not found")
}
