package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
)

// bufferBody makes a request with a small body replayable: a body of at
// most limit bytes is read into memory and GetBody set, so that a retry can
// send it again to another backend, whatever the method. A larger body, or
// one whose end is not reached within limit bytes, is streamed as it
// arrives (what was read so far goes first) and GetBody stays nil: such a
// request is never sent twice unless its method is idempotent and it has no
// body. limit 0 turns buffering off.
//
// Reading the body before dialling costs the backend nothing and the client
// one round trip less of overlap; for bodies this small that is noise.
func bufferBody(r *http.Request, limit int64) error {
	if limit <= 0 || r.Body == nil || r.Body == http.NoBody || r.GetBody != nil {
		return nil
	}
	if r.ContentLength > limit {
		return nil
	}
	size := r.ContentLength
	if size < 0 {
		size = 512 // unknown length (chunked): grow as needed
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return err
	}
	if n > limit { // longer than we keep: stream the rest behind what was read
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf.Bytes()), r.Body), r.Body}
		return nil
	}
	data := buf.Bytes()
	r.Body.Close()
	r.ContentLength = int64(len(data))
	r.TransferEncoding = nil
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	r.Body, _ = r.GetBody()
	if len(data) == 0 {
		r.Body, r.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
	}
	return nil
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	c io.Closer
}

func (rc readCloser) Close() error { return rc.c.Close() }

// freshBody gives a retry its own copy of the request body.
func freshBody(r *http.Request) (io.ReadCloser, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return r.Body, nil
	}
	if r.GetBody == nil {
		return nil, errors.New("request body cannot be sent again")
	}
	return r.GetBody()
}

// limitBody applies admission.max_body_bytes: a declared length over the
// limit is refused at once with 413, and a body of unknown length is cut off
// there (the read fails with *http.MaxBytesError, which errorHandler turns
// into 413). It reports whether the request may go on.
func (h *Handler) limitBody(w http.ResponseWriter, r *http.Request, st *reqState) bool {
	limit := h.opts.MaxBodyBytes
	if limit <= 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength > limit {
		st.reject(http.StatusRequestEntityTooLarge, RejectBodyTooLarge, 0)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return true
}

// RejectBodyTooLarge is the X-Lbd-Reject reason of a 413.
const RejectBodyTooLarge = "body-too-large"

func isBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
