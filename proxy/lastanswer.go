package proxy

import (
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/lbd/lbd/backendactor"
)

// heldBodyBytes is the largest 5xx body read into memory while another
// backend is tried; a larger one stays on its connection until the next try
// has answered.
const heldBodyBytes = 64 << 10

// heldAnswer is a backend's 5xx answer kept while another backend is tried:
// if no later try does better, the client gets this answer — the backend's
// status, headers and body — rather than lbd's own 502. The try still counts
// as a failure for the breaker and outlier detection: its slot is released
// with the 5xx outcome, whichever answer the client ends up with.
type heldAnswer struct {
	resp     *http.Response
	backend  *backendactor.Handle
	up       *upstream
	upstream time.Duration
}

// hold keeps resp, the answer of the try st just made. A small body is read
// at once, so that the backend's slot and connection come back before the
// next try instead of after it. A body that breaks off while being read is
// no answer to give; hold then returns nil.
func hold(resp *http.Response, st *reqState) *heldAnswer {
	a := &heldAnswer{resp: resp, backend: st.backend, up: st.up, upstream: st.upstream}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, heldBodyBytes+1))
	switch {
	case err != nil:
		resp.Body.Close()
		return nil
	case len(buf) <= heldBodyBytes:
		resp.Body.Close() // read to the end: releases the slot now
		resp.Body = io.NopCloser(bytes.NewReader(buf))
	default:
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
	}
	return a
}

type readCloser struct {
	io.Reader
	io.Closer
}

// discard drops an answer a later try replaced. nil is fine.
func (a *heldAnswer) discard() {
	if a == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, a.resp.Body, 4<<10)
	a.resp.Body.Close()
}

// answer makes the held answer the request's: the access log and metrics
// name the backend that gave it.
func (a *heldAnswer) answer(st *reqState) *http.Response {
	st.backend, st.up, st.upstream = a.backend, a.up, a.upstream
	return a.resp
}
