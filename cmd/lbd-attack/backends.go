package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/lbd/lbd/config"
)

// serveUpload treats a POST as most servers do: it reads the whole body,
// then answers. Slow bodies are sent to it.
func serveUpload(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("X-Backend", "upload")
}

// bigBody is what serveBig writes, 16 MiB in all.
var bigBody = make([]byte, 32<<10)

// serveBig answers 16 MiB: what non-reading clients ask for.
func serveBig(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Length", fmt.Sprint(512*len(bigBody)))
	for range 512 {
		if _, err := w.Write(bigBody); err != nil {
			return
		}
	}
}

// startBackend serves h on a loopback port; sndbuf > 0 sets its
// connections' send buffer, so that a thousand responses nobody reads park
// kilobytes in the kernel rather than megabytes each (the attack is on
// lbd's places, not on the machine's memory).
func startBackend(h http.Handler, sndbuf int) (*http.Server, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if sndbuf <= 0 {
			return nil
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, sndbuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

// lbdConfig is lbd's defaults over the backends, with the access log off
// (it would only cost CPU the measurement shares), a pool "big" for /big,
// whose backend answers 16 MiB (what non-reading clients ask for), and a
// pool "upload" for /upload, whose backend reads whole bodies.
func lbdConfig(backends []string, big, upload string, clientStall time.Duration) ([]byte, error) {
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AccessLog.Mode = "off"
	for _, u := range backends {
		cfg.Backends = append(cfg.Backends, config.Backend{URL: u, Weight: 1, Protocol: "http1"})
	}
	if clientStall > 0 {
		cfg.Timeouts.ClientStall = config.Duration(clientStall)
	}
	pool := func(u string) config.Pool {
		p := cfg.DefaultPoolConfig()
		p.Backends, p.Canary = []config.Backend{{URL: u, Weight: 1, Protocol: "http1"}}, config.Canary{}
		return p
	}
	cfg.Pools = map[string]config.Pool{"big": pool(big), "upload": pool(upload)}
	cfg.Routes = []config.Route{
		{Name: "big", Match: config.RouteMatch{PathPrefix: "/big"}, Pool: "big"},
		{Name: "upload", Match: config.RouteMatch{PathPrefix: "/upload"}, Pool: "upload"},
		{Name: "rest", Match: config.RouteMatch{}, Pool: config.DefaultPool},
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("generated config: %w", err)
	}
	return json.MarshalIndent(cfg, "", "  ")
}
