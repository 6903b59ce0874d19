package proxy

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestConnGuardCapsAndCounts(t *testing.T) {
	g := NewConnGuard(prometheus.NewRegistry())
	g.Set(2, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go func() { _ = srv.Serve(g.Listener(ln)) }()
	defer srv.Close()

	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	require.Eventually(t, func() bool { return g.Open() == 2 }, 5*time.Second, 10*time.Millisecond)
	if third, err := net.Dial("tcp", ln.Addr().String()); err == nil { // the reset may even beat the dial
		defer third.Close()
		require.NoError(t, third.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = third.Read(make([]byte, 1))
		require.Error(t, err, "the third is closed at accept")
	}
	require.Eventually(t, func() bool { return g.Refused() == 1 }, 5*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 2, g.Open())
	conns[0].Close()
	require.Eventually(t, func() bool { return g.Open() == 1 }, 5*time.Second, 10*time.Millisecond)
}

// A client that takes no byte of its response is cut once a write has
// waited client_stall: the write deadline moves with every write.
func TestConnGuardCutsAStalledWrite(t *testing.T) {
	g := NewConnGuard(nil)
	g.Set(0, 200*time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gl := g.Listener(ln)
	defer gl.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := gl.Accept()
	require.NoError(t, err)
	defer server.Close()
	start := time.Now()
	chunk := make([]byte, 64<<10)
	var werr error
	for time.Since(start) < 10*time.Second && werr == nil { // the client never reads: the buffers fill, then a write waits
		_, werr = server.Write(chunk)
	}
	var ne net.Error
	require.ErrorAs(t, werr, &ne)
	require.True(t, ne.Timeout(), "%v", werr)
	require.Less(t, time.Since(start), 5*time.Second)

	// A client that reads slowly but steadily is never cut.
	g.Set(0, 300*time.Millisecond)
	c2, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c2.Close()
	s2, err := gl.Accept()
	require.NoError(t, err)
	defer s2.Close()
	go func() {
		r := bufio.NewReaderSize(c2, 1024)
		for {
			if _, err := r.Discard(1024); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for range 20 { // 20 x 16 KiB at ~200 KiB/s: about 1.6s, several client_stalls in all
		_, err := s2.Write(make([]byte, 16<<10))
		require.NoError(t, err)
	}
}

// countingListener counts Accept calls.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	l.n.Add(1)
	return l.Listener.Accept()
}

// With lbd out of descriptors, accept fails with EMFILE while connections
// wait in the backlog. The guard passes the error on as it is, and
// net/http backs off (5 ms doubling to 1 s) instead of spinning.
func TestAcceptOutOfDescriptorsDoesNotSpin(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cl := &countingListener{Listener: ln}
	g := NewConnGuard(nil)
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	low := lim
	low.Cur = 256
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	}
	defer release()
	for len(held) < 512 { // leave one descriptor for the client below
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	held[len(held)-1].Close()
	held = held[:len(held)-1]
	client, err := net.Dial("tcp", ln.Addr().String()) // connects: the kernel queues it
	require.NoError(t, err)
	defer client.Close()

	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(g.Listener(cl)) }()
	time.Sleep(500 * time.Millisecond) // a spinning loop would accept thousands of times meanwhile
	calls := cl.n.Load()
	require.Less(t, calls, int64(20), "accept was retried %d times in 500ms", calls)
	release()
	_, err = io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(5*time.Second)))
	line, err := bufio.NewReader(client).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "200", "served once descriptors are back")
	srv.Close()
	<-done
}
