package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// An attack is what one hostile connection does, from its dial to its end;
// a flood keeps conns of them open for as long as the attack runs, dialling
// a new one whenever lbd ends one.
type attack struct {
	name  string
	about string
	conns int
	fast  bool // one request per connection, redialled after -pause (else after 100 ms)
	// rcvbuf, when set, is the attacking connections' receive buffer.
	rcvbuf int
	run    func(ctx context.Context, c net.Conn, a *attackRun) error
}

// attackRun is one running attack and what it saw.
type attackRun struct {
	attack
	addr   string
	drip   time.Duration // slow attacks send one byte per drip
	pause  time.Duration // between a fast attack's connection's end and the next dial, ±50%
	spread time.Duration // connections start at random moments within this

	open     atomic.Int64 // connections open now
	dialed   atomic.Int64
	ended    atomic.Int64 // connections lbd ended (closed, reset, answered)
	dialErrs atomic.Int64
	mu       sync.Mutex
	answers  map[string]int64 // status codes lbd answered attacking requests with
}

func (a *attackRun) answered(status string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.answers) < 16 || a.answers[status] > 0 {
		a.answers[status]++
	}
}

// flood runs conns connections of the attack until ctx ends, and returns
// when every one has stopped.
func (a *attackRun) flood(ctx context.Context) {
	var wg sync.WaitGroup
	for range a.conns {
		wg.Go(func() {
			// Random starts and pauses make the attack a steady stream
			// rather than waves of a thousand requests at once.
			sleep(ctx, time.Duration(rand.Int64N(int64(a.spread)+1)))
			for ctx.Err() == nil {
				c, err := dialLoopback(ctx, a.addr, a.rcvbuf)
				if err != nil {
					a.dialErrs.Add(1)
					sleep(ctx, 50*time.Millisecond)
					continue
				}
				a.dialed.Add(1)
				a.open.Add(1)
				stop := context.AfterFunc(ctx, func() { c.Close() })
				if err := a.run(ctx, c, a); err != nil && ctx.Err() == nil {
					a.ended.Add(1)
				}
				stop()
				c.Close()
				a.open.Add(-1)
				if a.fast {
					sleep(ctx, a.pause/2+time.Duration(rand.Int64N(int64(a.pause)+1)))
				} else {
					sleep(ctx, 100*time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// dialLoopback dials addr and refuses, after resolution, anything that is
// not a loopback address: the runner never sends an attack off the machine.
// rcvbuf > 0 sets the receive buffer before the connection is made, so the
// window it offers is that small from the start (set later, the kernel
// has already offered megabytes on loopback, and a thousand clients that
// do not read would park gigabytes in the kernel).
func dialLoopback(ctx context.Context, addr string, rcvbuf int) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, rc syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Unmap().IsLoopback() {
			return fmt.Errorf("%s is not a loopback address", host)
		}
		if rcvbuf <= 0 {
			return nil
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	return d.DialContext(ctx, "tcp", addr)
}

// drip writes prefix, then one byte of filler per interval until the write
// fails (lbd closed the connection) or ctx ends.
func drip(ctx context.Context, c net.Conn, prefix string, every time.Duration) error {
	if _, err := io.WriteString(c, prefix); err != nil {
		return err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := c.Write([]byte{'a'}); err != nil {
				return err
			}
		}
	}
}

// watchAnswer reads what lbd answers on c and records its status; it
// returns when the connection ends.
func watchAnswer(c net.Conn, a *attackRun) error {
	line, err := bufio.NewReader(c).ReadString('\n')
	if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") {
		a.answered(f[1])
		return errAnswered
	}
	if err == nil {
		err = errors.New("unexpected answer")
	}
	return err
}

var errAnswered = errors.New("answered")

// dripWatched drips while a second goroutine watches for lbd's answer, so
// that an answer (408, 431) is recorded even when lbd leaves the
// connection open for writing. With untilClosed, an answer does not stop
// the drip: a full-duplex backend (an echo) answers at once and reads on.
func dripWatched(ctx context.Context, c net.Conn, a *attackRun, prefix string, untilClosed bool) error {
	done := make(chan error, 1)
	go func() {
		err := watchAnswer(c, a)
		if untilClosed && errors.Is(err, errAnswered) {
			_, err = io.Copy(io.Discard, c) // read on until lbd ends the connection
			if err == nil {
				err = io.EOF
			}
		}
		done <- err
	}()
	werr := make(chan error, 1)
	go func() { werr <- drip(ctx, c, prefix, a.drip) }()
	select {
	case err := <-done:
		c.Close()
		<-werr
		return err
	case err := <-werr:
		c.Close()
		<-done
		return err
	}
}

// The attacks of issue 19.
func attacks(conns, floodConns int) []attack {
	return []attack{
		{name: "slowloris headers", conns: conns,
			about: "request headers sent one byte per drip, never finished",
			run: func(ctx context.Context, c net.Conn, a *attackRun) error {
				return dripWatched(ctx, c, a, "GET / HTTP/1.1\r\nHost: lbd\r\nX-Slow: ", false)
			}},
		{name: "slow bodies", conns: conns,
			about: "POST declaring 1 MB, the body sent one byte per drip, to a backend that reads the whole body before it answers",
			run: func(ctx context.Context, c net.Conn, a *attackRun) error {
				return dripWatched(ctx, c, a, "POST /upload HTTP/1.1\r\nHost: lbd\r\nContent-Length: 1000000\r\n\r\n", true)
			}},
		{name: "non-reading clients", conns: conns, rcvbuf: 4 << 10,
			about: "GET of a 16 MiB response, never read (4 KiB receive buffer)",
			run: func(ctx context.Context, c net.Conn, a *attackRun) error {
				if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: lbd\r\n\r\n"); err != nil {
					return err
				}
				<-ctx.Done()
				return nil
			}},
		{name: "malformed chunked bodies", conns: conns, fast: true,
			about: "POST with Transfer-Encoding: chunked and a chunk size of \"zz\", to a backend that reads bodies",
			run: func(ctx context.Context, c net.Conn, a *attackRun) error {
				if _, err := io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: lbd\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"); err != nil {
					return err
				}
				return watchAnswer(c, a)
			}},
		{name: "idle connections", conns: conns,
			about: "connect and send nothing",
			run: func(ctx context.Context, c net.Conn, a *attackRun) error {
				_, err := c.Read(make([]byte, 1)) // returns when lbd closes it
				return err
			}},
		{name: "header flood", conns: floodConns, fast: true,
			about: "~1 MiB of headers per request, as fast as lbd takes them",
			run: func(ctx context.Context, c net.Conn, a *attackRun) error {
				done := make(chan error, 1)
				go func() { done <- watchAnswer(c, a) }()
				_, _ = c.Write(floodRequest) // the answer, or the connection's end, is what counts
				return <-done
			}},
	}
}

// floodRequest is a request with about 1 MiB of headers, written in one
// go: the flood costs the runner one system call per request, not a
// thousand, so that the CPU it takes from the shared machine is the
// kernel's copy, not its own loop.
var floodRequest = func() []byte {
	line := "X-Flood: " + strings.Repeat("f", 1000) + "\r\n"
	return []byte("GET / HTTP/1.1\r\nHost: lbd\r\n" + strings.Repeat(line, 1000) + "\r\n")
}()
