package proxy

import (
	"errors"
	"io"
	"sync"
	"time"
)

// ErrLogClosed is returned by LineWriter.Write after Close.
var ErrLogClosed = errors.New("access log: closed")

// LineWriter batches access-log lines so that the request path never waits
// for the disk: a request only copies its line into a memory buffer, and the
// writer's own goroutine hands whole batches to the output every FlushEvery
// (or as soon as a batch reaches BufferBytes). One write(2) per batch instead
// of one per request is what keeps the log from throttling the data plane.
//
// Memory is bounded: when the output cannot keep up and twice BufferBytes are
// waiting, writers wait for the flusher — back-pressure rather than an
// unbounded queue or silently dropped lines. Close writes what is buffered,
// so a clean shutdown loses no line.
type LineWriter struct {
	out   io.Writer
	every time.Duration
	limit int

	mu     sync.Mutex
	room   sync.Cond // broadcast when the flusher took the buffer, or on Close
	buf    []byte
	closed bool
	err    error // the first output error, returned by Close

	kick chan struct{} // cap 1: a batch is full
	swap chan outputSwap
	quit chan struct{}
	done chan struct{}
}

// Defaults for NewLineWriter's zero arguments.
const (
	DefaultFlushEvery  = 100 * time.Millisecond
	DefaultBufferBytes = 64 << 10
)

// NewLineWriter starts a writer that flushes to out every flushEvery and
// whenever bufferBytes are waiting. Zero values take the defaults.
func NewLineWriter(out io.Writer, flushEvery time.Duration, bufferBytes int) *LineWriter {
	if flushEvery <= 0 {
		flushEvery = DefaultFlushEvery
	}
	if bufferBytes <= 0 {
		bufferBytes = DefaultBufferBytes
	}
	w := &LineWriter{
		out: out, every: flushEvery, limit: bufferBytes,
		buf:  make([]byte, 0, bufferBytes),
		kick: make(chan struct{}, 1), swap: make(chan outputSwap), quit: make(chan struct{}), done: make(chan struct{}),
	}
	w.room.L = &w.mu
	go w.run()
	return w
}

// Write buffers p (one log line; AccessLog writes each line in one call).
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	for !w.closed && len(w.buf) > 0 && len(w.buf)+len(p) > 2*w.limit {
		w.room.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		return 0, ErrLogClosed
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= w.limit
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Close refuses further lines, writes the buffered ones and stops the
// flusher. It returns the first error the output reported, if any.
func (w *LineWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	w.room.Broadcast()
	w.mu.Unlock()
	close(w.quit)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// outputSwap asks the flusher to move to another output.
type outputSwap struct {
	out  io.Writer
	done chan error
}

// SetOutput writes the lines buffered so far to the current output, then
// sends every later line to out: a log file can be reopened (logrotate) or
// replaced (a reload) without losing or splitting a line. It returns the
// first error the old output reported, if any; the caller closes it.
func (w *LineWriter) SetOutput(out io.Writer) error {
	req := outputSwap{out: out, done: make(chan error, 1)}
	select {
	case w.swap <- req:
		return <-req.done
	case <-w.done:
		return ErrLogClosed
	}
}

// run is the flusher: the only goroutine that writes to the output.
func (w *LineWriter) run() {
	defer close(w.done)
	t := time.NewTicker(w.every)
	defer t.Stop()
	spare := make([]byte, 0, w.limit)
	for {
		select {
		case <-t.C:
		case <-w.kick:
		case s := <-w.swap:
			spare = w.flush(spare)
			w.mu.Lock()
			err := w.err
			w.err, w.out = nil, s.out
			w.mu.Unlock()
			s.done <- err
			continue
		case <-w.quit:
			w.flush(spare)
			return
		}
		spare = w.flush(spare)
	}
}

// flush swaps the buffer for the empty spare, writes the full one outside
// the lock and returns it, emptied, as the next spare.
func (w *LineWriter) flush(spare []byte) []byte {
	w.mu.Lock()
	full := w.buf
	w.buf = spare[:0]
	w.room.Broadcast()
	w.mu.Unlock()
	if len(full) == 0 {
		return full
	}
	if _, err := w.out.Write(full); err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	if cap(full) > 4*w.limit { // a huge line grew it; do not keep the memory
		return make([]byte, 0, w.limit)
	}
	return full[:0]
}
