package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// notifySocket is the receiving end of sd_notify, as systemd has it: a
// unixgram socket whose path goes to lbd in NOTIFY_SOCKET.
type notifySocket struct{ c *net.UnixConn }

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &notifySocket{c}
}

// next returns the next datagram's assignments as a map.
func (n *notifySocket) next(t *testing.T) map[string]string {
	t.Helper()
	require.NoError(t, n.c.SetReadDeadline(time.Now().Add(15*time.Second)))
	buf := make([]byte, 4096)
	k, err := n.c.Read(buf)
	require.NoError(t, err, "no notification within 15s")
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(buf[:k])), "\n") {
		key, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "not an assignment: %q", line)
		m[key] = v
	}
	return m
}

func (n *notifySocket) none(t *testing.T, within time.Duration) {
	t.Helper()
	require.NoError(t, n.c.SetReadDeadline(time.Now().Add(within)))
	buf := make([]byte, 4096)
	k, err := n.c.Read(buf)
	require.Error(t, err, "unexpected notification %q", buf[:k])
}

// lbd as systemd runs it (Type=notify, ExecReload=kill -HUP, a pid file):
// READY=1 once the first health round is over, even with every backend
// down; RELOADING=1 with MONOTONIC_USEC, then READY=1, around a SIGHUP;
// SIGUSR1 reopens the access log; STOPPING=1 on SIGTERM, exit 0, and the
// pid file gone.
func TestSystemdLifecycle(t *testing.T) {
	for _, k := range []string{"LB_PORT", "LB_ADMIN_ADDR", "LB_ADMIN_TOKEN"} {
		t.Setenv(k, "")
	}
	sock := newNotifySocket(t)
	dir := t.TempDir()
	down, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	downURL := "http://" + down.Addr().String()
	require.NoError(t, down.Close())
	path := filepath.Join(dir, "config.json")
	accessLog := filepath.Join(dir, "access.log")
	writeFile := func(backends ...string) {
		cfg := config.Default()
		cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
		cfg.AccessLog = config.AccessLog{Mode: "on", File: accessLog}
		cfg.Health.Interval = config.Duration(200 * time.Millisecond)
		for _, b := range backends {
			cfg.Backends = append(cfg.Backends, config.Backend{URL: b, Weight: 1, Protocol: "http1"})
		}
		data, err := json.Marshal(cfg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data, 0o600))
	}
	writeFile(downURL) // every backend down
	pidfile := filepath.Join(dir, "lbd.pid")
	logs := newLogLines()
	exit := make(chan int, 1)
	go func() { exit <- run([]string{"-config", path, "-pidfile", pidfile}, io.Discard, logs) }()

	ready := sock.next(t)
	require.Equal(t, "1", ready["READY"], "%v", ready)
	require.Contains(t, ready["STATUS"], "serving on 127.0.0.1:")
	from := 0
	started := logs.wait(t, &from, "lbd started")
	logs.wait(t, &from, "lbd ready")
	pid, err := os.ReadFile(pidfile)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(pid))

	bs := startBackends(t, synth.Knobs{Name: "a"})
	writeFile(bs[0].URL())
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	reloading := sock.next(t)
	require.Equal(t, "1", reloading["RELOADING"])
	usec, err := strconv.ParseInt(reloading["MONOTONIC_USEC"], 10, 64)
	require.NoError(t, err)
	require.Positive(t, usec)
	require.Equal(t, "1", sock.next(t)["READY"], "READY=1 ends the reload")
	logs.wait(t, &from, "config reloaded")

	require.NoError(t, os.WriteFile(path, []byte(`{"backends":[{"url":"ftp://x"}]}`), 0o600))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Equal(t, "1", sock.next(t)["RELOADING"])
	after := sock.next(t)
	require.Equal(t, "1", after["READY"], "a refused reload still ends with READY=1: the old config runs")
	require.Contains(t, after["STATUS"], "reload refused")

	admin := "http://" + started["admin"].(string)
	data := "http://" + started["listen"].(string)
	require.Eventually(t, func() bool { return len(getJSON(t, admin+"/admin/backends")["backends"].([]any)) == 1 },
		10*time.Second, 20*time.Millisecond)
	get := func() {
		resp, err := http.Get(data + "/")
		require.NoError(t, err)
		resp.Body.Close()
	}
	get()
	require.NoError(t, os.Rename(accessLog, accessLog+".1"))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	logs.wait(t, &from, "access log reopened")
	get()

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	require.Equal(t, "1", sock.next(t)["STOPPING"])
	select {
	case code := <-exit:
		require.Equal(t, 0, code)
	case <-time.After(20 * time.Second):
		t.Fatal("lbd did not stop on SIGTERM")
	}
	_, err = os.Stat(pidfile)
	require.ErrorIs(t, err, os.ErrNotExist, "the pid file is removed at exit")
	for _, f := range []string{accessLog + ".1", accessLog} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.Equal(t, 1, strings.Count(string(b), "\n"), "%s: one request each side of the reopen", f)
	}
}

func TestPidfileThatCannotBeWrittenFailsTheStart(t *testing.T) {
	for _, k := range []string{"LB_PORT", "LB_ADMIN_ADDR", "LB_ADMIN_TOKEN", "NOTIFY_SOCKET"} {
		t.Setenv(k, "")
	}
	path := filepath.Join(t.TempDir(), "config.json")
	writeConfig(t, path, nil)
	var errb syncBuffer // the log and run's own messages share it, as they share stderr
	code := run([]string{"-config", path, "-pidfile", filepath.Join(t.TempDir(), "no", "such", "dir", "lbd.pid")}, io.Discard, &errb)
	require.Equal(t, 1, code)
	require.Contains(t, errb.String(), "-pidfile")
}

// syncBuffer is a buffer that the daemon's log and run may write at once.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
