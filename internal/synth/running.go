package synth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Running is a Server listening on a real socket. Close it to stop every
// goroutine it started, including requests that were told to hang.
type Running struct {
	Server *Server

	ln     net.Listener
	hs     *http.Server
	served chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start listens on addr ("127.0.0.1:0" when empty: the kernel picks a port)
// and serves a New(k, opts...) Server on it. The listener speaks HTTP/1.1
// and cleartext HTTP/2 with prior knowledge (h2c).
func Start(addr string, k Knobs, opts ...Option) (*Running, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("synth backend %q: %w", k.Name, err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	r := &Running{
		Server: New(k, opts...),
		ln:     ln,
		served: make(chan struct{}),
	}
	r.hs = &http.Server{
		Handler:           r.Server,
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         &protos,
	}
	go func() {
		defer close(r.served)
		_ = r.hs.Serve(ln) // returns ErrServerClosed after Close
	}()
	return r, nil
}

// Addr is the listening address as host:port, e.g. "127.0.0.1:40123".
func (r *Running) Addr() string { return r.ln.Addr().String() }

// URL is the base URL, e.g. "http://127.0.0.1:40123", with no trailing slash.
func (r *Running) URL() string { return "http://" + r.Addr() }

// Close stops listening, drops every connection, releases waiting requests
// and returns once no handler goroutine remains. It is safe to call twice.
func (r *Running) Close() error {
	r.closeOnce.Do(func() {
		r.Server.Close()
		err := r.hs.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		<-r.served
		r.Server.wait()
		r.closeErr = err
	})
	return r.closeErr
}
