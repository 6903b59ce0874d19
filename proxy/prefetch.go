package proxy

import (
	"io"
	"net/http"
	"time"
)

// prefetchWait is how long a chunked HTTP/1 request waits for the first
// piece of its body before it is forwarded anyway.
const prefetchWait = 20 * time.Millisecond

// prefetchSize bounds the first read.
const prefetchSize = 8 << 10

// prefetchChunked reads the first piece of a chunked HTTP/1 body before the
// request takes an admission place, a backend slot or a backend
// connection. A malformed body (the chunk size "zz") usually arrives with
// the headers, and so is answered 400 before any backend is involved,
// instead of costing a backend connection per request: the transport must
// drop a connection whose request broke off. A body that has not arrived
// within prefetchWait is not waited for (a streaming client may wait for
// the answer before it sends more): the read goes on in its own goroutine,
// which ends with that read, and the transport takes its result first. It
// reports whether the request may go on; when the body failed, the client
// has its answer.
func (h *Handler) prefetchChunked(r *http.Request, st *reqState) bool {
	if r.ProtoMajor != 1 || len(r.TransferEncoding) == 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	p := &prefetched{src: r.Body, done: make(chan struct{}), buf: make([]byte, prefetchSize)}
	go p.first()
	t := time.NewTimer(prefetchWait)
	select {
	case <-p.done:
	case <-t.C:
	}
	t.Stop()
	if st.answerBodyFailure(r) {
		return false
	}
	r.Body = p
	return true
}

// prefetched is a body whose first read runs ahead.
type prefetched struct {
	src  io.ReadCloser
	done chan struct{} // closed when the first read returned
	buf  []byte
	n    int
	err  error // of the first read
	off  int
}

func (p *prefetched) first() {
	defer close(p.done)
	p.n, p.err = p.src.Read(p.buf)
}

func (p *prefetched) Read(b []byte) (int, error) {
	<-p.done
	if p.off < p.n {
		n := copy(b, p.buf[p.off:p.n])
		p.off += n
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	return p.src.Read(b)
}

func (p *prefetched) Close() error { return p.src.Close() }
