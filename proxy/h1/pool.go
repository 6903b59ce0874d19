package h1

import (
	"bufio"
	"context"
	"io"
	"sync"
	"time"
)

// pool is a Transport's idle connections, most recently used on top: the
// busiest connections stay warm, and the ones below age out. A timer sweeps
// out those idle for longer than IdleTimeout; it runs only while some
// connection is idle.
type pool struct {
	t      *Transport
	mu     sync.Mutex
	idle   []*conn
	closed bool
	sweep  *time.Timer
	armed  bool
}

func (p *pool) init(t *Transport) {
	p.t = t
	p.sweep = time.AfterFunc(time.Hour, p.sweepIdle)
	p.sweep.Stop()
}

// get returns an idle connection that is still usable, or dials one.
func (p *pool) get(ctx context.Context) (*conn, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		now := time.Now()
		if !c.deadline.IsZero() && !now.Before(c.deadline) {
			c.clearDeadline() // an expired deadline would fail the peek
		}
		if idle := now.Sub(c.idleAt); idle < p.t.o.IdleTimeout && c.idleOK(idle) {
			return c, nil
		}
		c.close(true)
	}
	return p.t.dial(ctx)
}

// put makes c idle; false means the pool is closed or full, and the
// caller closes c.
func (p *pool) put(c *conn) bool {
	limit := p.t.o.MaxIdle
	if p.t.o.Cap != nil {
		if n := p.t.o.Cap(); n > 0 && n < int64(limit) {
			limit = int(n)
		}
	}
	c.reused = true
	c.idleAt = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= limit {
		return false
	}
	p.idle = append(p.idle, c)
	if !p.armed {
		p.armed = true
		p.sweep.Reset(p.t.o.IdleTimeout)
	}
	return true
}

// sweepIdle closes the connections idle for IdleTimeout (the bottom of the
// stack) and sets the timer for the next one to age.
func (p *pool) sweepIdle() {
	timeout := p.t.o.IdleTimeout
	now := time.Now()
	p.mu.Lock()
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleAt) >= timeout {
		i++
	}
	old := make([]*conn, i)
	copy(old, p.idle[:i])
	n := copy(p.idle, p.idle[i:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	if n > 0 && !p.closed {
		p.sweep.Reset(timeout - now.Sub(p.idle[0].idleAt))
	} else {
		p.armed = false
	}
	p.mu.Unlock()
	for _, c := range old {
		c.close(true)
	}
}

// closeIdle closes the idle connections; final also closes the pool, so
// that connections now busy close when their response ends.
func (p *pool) closeIdle(final bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if final {
		p.closed = true
		p.sweep.Stop()
		p.armed = false
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.close(true)
	}
}

func (p *pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Buffers outlive their connections: a backend that closes connections
// often (Connection: close, short keep-alive) costs no new 8 KiB each time.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	chunks  = sync.Pool{New: func() any { b := make([]byte, chunkBuf); return &b }}
)

func getReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	if br != nil {
		br.Reset(nil)
		readers.Put(br)
	}
}

func getWriter(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	if bw != nil {
		bw.Reset(nil)
		writers.Put(bw)
	}
}

func getChunk() *[]byte  { return chunks.Get().(*[]byte) }
func putChunk(b *[]byte) { chunks.Put(b) }
