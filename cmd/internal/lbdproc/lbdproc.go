// Package lbdproc runs the lbd binary as a child process for the scenario
// runners (cmd/lbd-overload, cmd/lbd-failure): it writes the config, starts
// the daemon, learns its addresses from its "lbd started" log line, reads its
// metrics and admin JSON, and stops it with SIGTERM.
package lbdproc

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

// ErrNoMetric means /metrics had no sample of the asked family.
var ErrNoMetric = errors.New("metric not found")

// Process is one lbd daemon run as a child process.
type Process struct {
	DataURL  string // "http://127.0.0.1:PORT" of the data plane
	AdminURL string // of the admin listener
	LogPath  string // the daemon's standard output and error

	cmd       *exec.Cmd
	exited    chan struct{}
	exitError error
	client    *http.Client
}

// Start writes config into dir and starts bin with it, returning once the
// daemon has logged its addresses (its listeners are open then). The config
// should listen on kernel-chosen loopback ports ("127.0.0.1:0").
func Start(ctx context.Context, bin, dir string, config []byte) (*Process, error) {
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, config, 0o600); err != nil {
		return nil, err
	}
	p := &Process{LogPath: filepath.Join(dir, "lbd.log"), exited: make(chan struct{}),
		client: &http.Client{Timeout: 5 * time.Second}}
	logFile, err := os.Create(p.LogPath)
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
		p.DataURL, p.AdminURL = "http://"+Loopback(a[0]), "http://"+Loopback(a[1])
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("lbd exited at start (%v); see %s", p.exitError, p.LogPath)
	case <-timeout.C:
	case <-ctx.Done():
	}
	p.Stop()
	return nil, fmt.Errorf("lbd did not start within 10s; see %s", p.LogPath)
}

// Loopback turns a listener address such as "[::]:3030" or "127.0.0.1:3030"
// into one a client can dial on loopback.
func Loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// Stop sends SIGTERM and waits for the daemon, killing it after 20s.
func (p *Process) Stop() {
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

// GetJSON decodes GET AdminURL+path into v.
func (p *Process) GetJSON(ctx context.Context, path string, v any) error {
	resp, err := p.get(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Metric adds up every sample of the metric family name on /metrics, and
// returns ErrNoMetric when there is none.
func (p *Process) Metric(ctx context.Context, name string) (float64, error) {
	return MetricAt(ctx, p.client, p.AdminURL, name)
}

// MetricAt is Metric for any lbd, by its admin URL.
func MetricAt(ctx context.Context, client *http.Client, adminURL, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum, found = sum+v, true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%s: %w", name, ErrNoMetric)
	}
	return sum, nil
}

func (p *Process) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.AdminURL+path, nil)
	if err != nil {
		return nil, err
	}
	return p.client.Do(req)
}
