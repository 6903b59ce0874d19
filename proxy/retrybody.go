package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
)

// bufferBody makes a request with a small body replayable: a body whose
// declared length is at most limit bytes is read into memory and GetBody
// set, so that a retry can send it again to another backend, whatever the
// method. A larger body, or one of unknown length (chunked, or an HTTP/2
// stream without content-length), is streamed as it arrives and GetBody
// stays nil: such a request is never sent twice unless its method is
// idempotent and it has no body. Unknown lengths are never waited for,
// because a streaming client (gRPC, a full-duplex upload) may wait for the
// response before it sends more: reading ahead would deadlock it. limit 0
// turns buffering off.
func bufferBody(r *http.Request, limit int64) error {
	if limit <= 0 || r.Body == nil || r.Body == http.NoBody || r.GetBody != nil {
		return nil
	}
	if r.ContentLength <= 0 || r.ContentLength > limit {
		return nil
	}
	data := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, data); err != nil {
		return err
	}
	r.Body.Close()
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	r.Body, _ = r.GetBody()
	return nil
}

// bufferEarly reads a small body of declared length (bufferBody) before
// the request takes an admission place or a backend slot, so that a client
// sending it slowly holds only its own connection meanwhile, bounded by
// timeouts.client_stall, and none of the places other clients need. It
// reports whether the request may go on; when the body failed, the client
// has its answer.
func (h *Handler) bufferEarly(r *http.Request, st *reqState) bool {
	if err := bufferBody(r, st.settings.Retries.BufferBodyBytes); err != nil {
		if !st.answerBodyFailure(r) {
			st.reject(http.StatusBadRequest, RejectBadBody, 0)
		}
		return false
	}
	return true
}

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
	limit := st.live.MaxBodyBytes
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
