package main

import (
	"errors"
	"log"
	"net"
	"net/http"
	"time"
)

// capacityBackend models a server with a fixed pool of workers, such as a
// thread pool or a database connection pool: at most workers requests are
// served at once, each for service time, and the rest wait in FIFO order (Go
// queues blocked channel senders in arrival order). Its capacity is
// workers/service requests per second, and past that its latency grows
// with its queue without bound: the runaway an adaptive limit must prevent.
type capacityBackend struct {
	name    string
	service time.Duration
	slots   chan struct{}
	closed  chan struct{}
}

func newCapacityBackend(name string, workers int, service time.Duration) *capacityBackend {
	return &capacityBackend{
		name: name, service: service,
		slots: make(chan struct{}, workers), closed: make(chan struct{}),
	}
}

func (b *capacityBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", b.name)
	if r.URL.Path == "/healthz" {
		return
	}
	select {
	case b.slots <- struct{}{}:
	case <-r.Context().Done():
		return
	case <-b.closed:
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	defer func() { <-b.slots }()
	t := time.NewTimer(b.service)
	defer t.Stop()
	select {
	case <-t.C:
		_, _ = w.Write([]byte("ok\n"))
	case <-r.Context().Done():
	case <-b.closed:
		http.Error(w, "closed", http.StatusServiceUnavailable)
	}
}

// runningBackend is a capacityBackend on a loopback socket.
type runningBackend struct {
	*capacityBackend
	srv *http.Server
	url string
}

func startBackend(name string, workers int, service time.Duration, logger *log.Logger) (*runningBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &runningBackend{capacityBackend: newCapacityBackend(name, workers, service), url: "http://" + ln.Addr().String()}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Printf("backend %s stopped: %v", name, err)
		}
	}()
	return b, nil
}

func (b *runningBackend) close() {
	close(b.closed)
	_ = b.srv.Close()
}
