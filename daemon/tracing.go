package daemon

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/proxy"
	"github.com/lbd/lbd/tracing"
)

// tracingSlot holds the tracer provider while tracing is on. A reload whose
// tracing settings (file and environment combined) differ builds a new
// provider in prepare, which can fail and changes nothing; commit installs
// it in the data plane and retires the old one: the old provider keeps
// taking the spans of requests that started under it until they end (at
// most retireGrace), then flushes what it holds within flushTimeout. Its
// methods run on the owner's goroutine (New, reloads); close runs at
// shutdown.
type tracingSlot struct {
	metrics *tracing.Metrics // outlive every provider
	version string
	d       *Daemon

	mu       sync.Mutex
	cur      *tracing.Provider // nil: tracing off
	retiring sync.WaitGroup
	stopping chan struct{} // closed by close: retiring providers stop waiting
}

const (
	retireGrace  = 10 * time.Second
	flushTimeout = 5 * time.Second
)

func newTracingSlot(d *Daemon) *tracingSlot {
	return &tracingSlot{metrics: tracing.NewMetrics(d.prom), version: d.opts.Version, d: d, stopping: make(chan struct{})}
}

// current returns the provider in use; nil with tracing off.
func (s *tracingSlot) current() *tracing.Provider {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// tracingChange is a prepared change of the provider.
type tracingChange struct {
	s      *tracingSlot
	next   *tracing.Provider // nil: tracing goes off, or stays off
	change bool              // next replaces the current provider
}

// prepare builds the provider c asks for when it is not the one running.
func (s *tracingSlot) prepare(c *config.Tracing) (*tracingChange, error) {
	settings, on, err := tracing.Resolve(c, s.d.opts.Getenv)
	if err != nil {
		return nil, err
	}
	cur := s.current()
	switch {
	case !on:
		return &tracingChange{s: s, change: cur != nil}, nil
	case cur != nil && reflect.DeepEqual(cur.Settings(), settings):
		return &tracingChange{s: s, next: cur}, nil
	}
	p, err := tracing.New(settings, tracing.Options{Version: s.version, Logger: s.d.log, Metrics: s.metrics})
	if err != nil {
		return nil, err
	}
	return &tracingChange{s: s, next: p, change: true}, nil
}

// abort drops a provider prepare built; it has sent nothing.
func (c *tracingChange) abort() {
	if c.change && c.next != nil {
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		_ = c.next.Shutdown(ctx)
	}
}

// commit makes the prepared provider current and retires the old one. It
// returns what the data plane traces with from its next request (nil: off).
func (c *tracingChange) commit() *proxy.Tracing {
	s := c.s
	if c.change {
		s.mu.Lock()
		old := s.cur
		s.cur = c.next
		s.mu.Unlock()
		if old != nil {
			s.retire(old)
		}
		if c.next != nil {
			st := c.next.Settings()
			s.d.log.Info("tracing on", "endpoint", st.URL, "protocol", st.Protocol, "sample_ratio", st.SampleRatio,
				"service_name", st.ServiceName)
		} else {
			s.d.log.Info("tracing off")
		}
	}
	return proxyTracing(c.next)
}

func proxyTracing(p *tracing.Provider) *proxy.Tracing {
	if p == nil {
		return nil
	}
	return proxy.NewTracing(p.TracerProvider(), p.Propagator(), p.Roots())
}

// retire shuts p down once the requests it traces are over (or after
// retireGrace, or at once when lbd stops), in the background: a reload does
// not wait for a flush.
func (s *tracingSlot) retire(p *tracing.Provider) {
	s.retiring.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		deadline := time.NewTimer(retireGrace)
		defer deadline.Stop()
	wait:
		for p.Open() > 0 {
			select {
			case <-t.C:
			case <-deadline.C:
				break wait
			case <-s.stopping:
				break wait
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			s.d.log.Warn("tracing: the retired provider did not send all its spans", "err", err)
		}
	})
}

// close shuts down the current provider, flushing what it holds, and waits
// for retiring ones. The data plane has stopped by then.
func (s *tracingSlot) close(ctx context.Context) error {
	close(s.stopping)
	s.mu.Lock()
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	var err error
	if cur != nil {
		ctx, cancel := context.WithTimeout(ctx, flushTimeout)
		defer cancel()
		err = cur.Shutdown(ctx)
	}
	s.retiring.Wait()
	if errors.Is(err, context.DeadlineExceeded) {
		s.d.log.Warn("tracing: the last spans were not all sent in time", "timeout", flushTimeout.String())
		return nil
	}
	return err
}
