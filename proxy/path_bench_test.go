package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/scheduler"
)

// BenchmarkProxyPath is the whole data plane over real loopback sockets,
// with every feature on as lbd's defaults have them: p2c-ewma over three
// backends, admission (hard cap, AIMD limit), retries with body buffering,
// metrics into a registry, the access log (batched, to io.Discard). The
// backends and the client are raw HTTP/1.1 over TCP, as lean as they can
// be, so that what allocs/op and cpu-µs/req measure is the proxy: the
// proxy's Handler served by net/http on 127.0.0.1:0, its upstream
// transport, and the kernel's loopback. cpu-µs/req is the process's
// user+system CPU per request (client and backends included).
//
// proxy=bare-go is the reference of issue 18: httputil.ReverseProxy with
// net/http's Transport and round robin over the same backends, as
// ../shared/bench/bareproxy runs it.
//
//	go test -run '^$' -bench ProxyPath -benchmem -count 6 ./proxy/
func BenchmarkProxyPath(b *testing.B) {
	for _, proxy := range []string{"lbd", "bare-go"} {
		for _, size := range []int{64, 1 << 10, 64 << 10} {
			b.Run("proxy="+proxy+"/body="+byteSize(size), func(b *testing.B) {
				var addr string
				if proxy == "lbd" {
					addr = startBenchProxy(b, size, 3)
				} else {
					addr = startBareProxy(b, size, 3)
				}
				runClients(b, addr, size)
			})
		}
	}
}

// runClients sends b.N keep-alive GETs from 16 connections.
func runClients(b *testing.B, addr string, size int) {
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		c, err := dialRawClient(addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		for pb.Next() {
			if err := c.get(size); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/req")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// startBenchProxy starts n raw backends answering size-byte bodies, and an
// lbd data plane in front of them; everything stops at the end of b.
func startBenchProxy(b *testing.B, size, n int) string {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	reg := actor.NewRegistry()
	sched, err := scheduler.New(scheduler.Config{Policy: "p2c-ewma", Registry: reg, Logger: log,
		Backend: backendactor.Config{
			Breaker: backendactor.BreakerConfig{FailureThreshold: 5, OpenFor: 10 * time.Second, HalfOpenProbes: 1, MaxOpenFor: 5 * time.Minute},
			Rise:    2, Fall: 3, Logger: log,
		}})
	require.NoError(b, err)
	for range n {
		be := startRawBackend(b, size)
		_, err := sched.Add(context.Background(), scheduler.Spec{URL: "http://" + be, Weight: 1, Protocol: "http1", Initial: true})
		require.NoError(b, err)
	}
	lim, err := controller.NewLimiter(reg, controller.LimiterConfig{Algorithm: "aimd", Target: 100 * time.Millisecond,
		Percentile: 0.9, MinLimit: 64, MaxLimit: 1024, Increase: 1, DecreaseFactor: 0.7, Interval: 500 * time.Millisecond, Logger: log})
	require.NoError(b, err)
	prom := prometheus.NewRegistry()
	al := NewAccessLog(io.Discard, 1)
	def := config.Default() // every feature on as lbd's defaults have them
	h := New(Options{
		Scheduler: sched,
		Admitter:  NewAdmission(AdmissionOptions{MaxInflight: 1024, Limit: lim, Registerer: prom}),
		Transport: TransportOptions{DialTimeout: 2 * time.Second, ResponseHeaderTimeout: 30 * time.Second, IdleConnTimeout: 90 * time.Second},
		Retries:   RetryOptions{Max: 1, BudgetPercent: 20, MinPerSecond: 10, BufferBodyBytes: 64 << 10},
		Upgrades:  UpgradeOptions{DrainTimeout: 10 * time.Second},
		Live: Live{AccessLog: al, MaxBodyBytes: def.Admission.MaxBodyBytes, ClientStall: def.Timeouts.ClientStall.D(),
			MaxHeaderCount: def.Admission.MaxHeaderCount, MaxURIBytes: def.Admission.MaxURIBytes},
		Registerer: prom, Logger: log,
	})
	addr := serve(b, h, log)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close()
		_ = al.Close()
		_ = sched.Stop(ctx)
		_ = lim.Stop(ctx)
	})
	return addr
}

// startBareProxy is bare-go: ReverseProxy, a tuned net/http Transport,
// round robin, nothing else.
func startBareProxy(b *testing.B, size, n int) string {
	b.Helper()
	var targets []*url.URL
	for range n {
		targets = append(targets, &url.URL{Scheme: "http", Host: startRawBackend(b, size)})
	}
	var next atomic.Uint64
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 256
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(targets[next.Add(1)%uint64(len(targets))])
			pr.SetXForwarded()
		},
		Transport: tr, BufferPool: bufferPool{}, ErrorLog: stdlog.New(io.Discard, "", 0),
	}
	b.Cleanup(tr.CloseIdleConnections)
	return serve(b, rp, slog.New(slog.DiscardHandler))
}

// serve runs h on a net/http server on 127.0.0.1:0 until the end of b.
func serve(b *testing.B, h http.Handler, log *slog.Logger) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// startRawBackend answers every request on its connections with the same
// response as ../shared/bench/backend does (Date, Content-Type,
// Content-Length, X-Backend and size bytes), without net/http's server, so
// the benchmark's allocations are the proxy's.
func startRawBackend(b *testing.B, size int) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(size) +
		"\r\nContent-Type: text/plain\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nX-Backend: b\r\n\r\n" + strings.Repeat("x", size))
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 256)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			wg.Go(func() { serveRaw(c, resp) })
		}
	})
	b.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
				continue
			default:
			}
			break
		}
		wg.Wait()
	})
	return ln.Addr().String()
}

// serveRaw answers each request (a header block; the benchmark sends no
// bodies) with resp until the connection ends.
func serveRaw(c net.Conn, resp []byte) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// rawClient is a keep-alive HTTP/1.1 client on one connection that reads
// exactly what the benchmark needs: the status and a Content-Length body.
type rawClient struct {
	net.Conn
	br  *bufio.Reader
	req []byte
}

func dialRawClient(addr string) (*rawClient, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawClient{Conn: c, br: bufio.NewReaderSize(c, 16<<10),
		req: []byte("GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: raw\r\nAccept: */*\r\n\r\n")}, nil
}

func (c *rawClient) get(want int) error {
	if _, err := c.Write(c.req); err != nil {
		return err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", line)
	}
	n := -1
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			n, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return err
			}
		}
	}
	if n != want {
		return fmt.Errorf("content-length %d, want %d", n, want)
	}
	_, err = c.br.Discard(n)
	return err
}

// processCPU returns the process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
