// Package etcdtest runs a real etcd server for the fleet tests: Debian's
// etcd-server binary (/usr/bin/etcd, 3.4 in bookworm) started as a child
// process on loopback ports with a temporary data directory, stopped with
// SIGKILL or SIGTERM and restarted on the same data directory and ports.
// A TCP proxy (Proxy) in front of it partitions one client from it.
//
// Ports: etcd's flags take URLs, not a listener, so ":0" is not available.
// FreePort binds 127.0.0.1:0, reads the port the kernel chose and closes the
// socket; etcd then binds it. Another process may take the port in the gap
// (a small race): Start then sees etcd exit with "address already in use"
// and tries again with new ports, up to three times. A restart reuses the
// ports of the first start, since clients keep the endpoint they were given.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is the etcd executable the tests run; LBD_ETCD overrides it.
func Binary() string {
	if p := os.Getenv("LBD_ETCD"); p != "" {
		return p
	}
	return "/usr/bin/etcd"
}

// Options change how the server starts.
type Options struct {
	// AuthTokenTTL, when positive, is passed as --auth-token-ttl (simple
	// tokens, whole seconds): how long an unused token stays valid.
	AuthTokenTTL time.Duration
	// TLS, when set, serves the client URL over HTTPS and requires client
	// certificates signed by its CA.
	TLS *Certs
}

// Server is one etcd member run by a test.
type Server struct {
	t       testing.TB
	opts    Options
	dir     string // data dir and log
	name    string // member name
	client  int    // client port
	peer    int    // peer port
	cluster string // --initial-cluster: name=peerURL of every member
	rootPwd string // set by EnableAuth

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

// Start starts etcd and waits until it answers, or skips the test when the
// binary is missing. Cleanup kills it.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if _, err := os.Stat(Binary()); err != nil {
		t.Skipf("etcd not available (%v): install Debian's etcd-server package (apt-get install etcd-server) or set LBD_ETCD", err)
	}
	s := &Server{t: t, opts: o, dir: t.TempDir(), name: "test"}
	t.Cleanup(s.Kill)
	var err error
	for range 3 {
		s.client, s.peer = FreePort(t), FreePort(t)
		s.cluster = s.name + "=" + s.peerURL()
		if err = s.start(); err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("etcdtest: %v", err)
	return nil
}

// FreePort returns a loopback TCP port the kernel just had free.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Endpoint is the client URL ("http://127.0.0.1:PORT", https with TLS).
func (s *Server) Endpoint() string {
	scheme := "http"
	if s.opts.TLS != nil {
		scheme = "https"
	}
	return scheme + "://127.0.0.1:" + strconv.Itoa(s.client)
}

// Addr is the client listener's host:port (what a Proxy forwards to).
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.client) }

// DataDir is the member's data directory, kept across restarts.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) peerURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.peer) }

func (s *Server) start() error {
	exited, err := s.spawn()
	if err != nil {
		return err
	}
	if err := s.waitReady(exited); err != nil {
		s.Kill()
		return fmt.Errorf("%w; etcd log:\n%s", err, tail(s.Log(), 2000))
	}
	return nil
}

// spawn starts the process without waiting for it to serve.
func (s *Server) spawn() (<-chan struct{}, error) {
	peer := s.peerURL()
	args := []string{
		"--name", s.name, "--data-dir", s.DataDir(),
		"--listen-client-urls", s.Endpoint(), "--advertise-client-urls", s.Endpoint(),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", s.cluster, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
		// Short ticks make elections fast (a lone member elects itself at once).
		"--heartbeat-interval", "50", "--election-timeout", "500",
	}
	if s.opts.AuthTokenTTL > 0 {
		args = append(args, "--auth-token", "simple",
			"--auth-token-ttl", strconv.Itoa(max(1, int(s.opts.AuthTokenTTL/time.Second))))
	}
	if c := s.opts.TLS; c != nil {
		args = append(args, "--cert-file", c.ServerCert, "--key-file", c.ServerKey,
			"--trusted-ca-file", c.CA, "--client-cert-auth")
	}
	cmd := exec.Command(Binary(), args...)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Binary(), err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited, s.log = cmd, exited, log
	s.mu.Unlock()
	return exited, nil
}

// waitReady polls until a Get answers (a member that serves reads has a
// leader and has applied its log), for at most 15 seconds.
func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return errors.New("etcd exited during start")
		default:
		}
		err := s.ping()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not ready after 15s: %w", err)
		}
		select {
		case <-exited:
		case <-time.After(50 * time.Millisecond): // a probe loop bounded by the deadline
		}
	}
}

func (s *Server) ping() error {
	c, err := s.newClient(500 * time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = c.Get(ctx, "etcdtest-ping")
	return err
}

// Client returns a client of the server (as root once EnableAuth ran),
// closed at cleanup. Tests write, compact and inspect with it.
func (s *Server) Client() *clientv3.Client {
	s.t.Helper()
	c, err := s.newClient(2 * time.Second)
	if err != nil {
		s.t.Fatalf("etcdtest: client: %v", err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) newClient(dial time.Duration) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: dial, Logger: zap.NewNop()}
	if s.rootPwd != "" {
		cfg.Username, cfg.Password = "root", s.rootPwd
	}
	if c := s.opts.TLS; c != nil {
		tc, err := c.ClientTLS()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	return clientv3.New(cfg)
}

// EnableAuth creates the root user and a user name/password with read and
// write access to every key, then turns authentication on.
func (s *Server) EnableAuth(name, password string) {
	s.t.Helper()
	c, err := s.newClient(2 * time.Second)
	if err != nil {
		s.t.Fatalf("etcdtest: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	root := "root-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	steps := []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", root); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.RoleAdd(ctx, "rw"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "rw", "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c.UserAdd(ctx, name, password); return err },
		func() error { _, err := c.UserGrantRole(ctx, name, "rw"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			s.t.Fatalf("etcdtest: enable auth, step %d: %v", i, err)
		}
	}
	s.rootPwd = root
}

// Kill sends SIGKILL and waits for the process to exit (a crash).
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits for the process to exit (a clean shutdown).
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart starts etcd again on the same data directory and ports.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill() // no-op when already stopped
	if err := s.start(); err != nil {
		s.t.Fatalf("etcdtest: restart: %v", err)
	}
}

// Log returns what etcd wrote since its last start.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// syncBuffer is etcd's log: exec copies into it on its own goroutine while
// a test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
