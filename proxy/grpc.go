package proxy

// gRPC through the proxy needs little beyond what httputil.ReverseProxy does
// for any HTTP/2 request: each call is a stream and is picked on its own,
// the "te: trailers" header survives the hop-by-hop filter, a response
// without Content-Length is flushed as it arrives (so streamed messages are
// never held back), and trailers are copied after the body. What is gRPC's
// own is the outcome: the HTTP status is 200 even when the call failed, and
// the real status comes in the grpc-status trailer at the end of the stream
// (or as a header in a Trailers-Only answer). outcome reads it when the
// response body is closed.

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/lbd/lbd/backendactor"
)

// gRPC status codes that change how a call counts for its backend
// (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
const (
	grpcCanceled    = 1
	grpcUnknown     = 2
	grpcInternal    = 13
	grpcUnavailable = 14
	grpcDataLoss    = 15
)

// isGRPC reports whether a request or response is gRPC: content type
// application/grpc, optionally with a codec suffix (application/grpc+proto).
// gRPC-Web (application/grpc-web) is not: it is plain HTTP with the status
// inside the body.
func isGRPC(h http.Header) bool {
	ct := h.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/grpc" || strings.HasPrefix(mt, "application/grpc+"))
}

// grpcOutcome classifies a call by its final status, as the breaker and the
// outlier detector should see it. Failures are the codes that say the server
// is in trouble whatever the caller asked: UNKNOWN (an unhandled error or a
// panic), INTERNAL, UNAVAILABLE and DATA_LOSS. The caller's own mistakes
// (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED...) are successes of the
// backend. DEADLINE_EXCEEDED is not counted either: the caller chose the
// deadline, and a backend that is merely slow is already penalised by its
// latency under p2c-ewma. CANCELLED says nothing about the backend. A
// response that ends with no grpc-status at all broke the protocol and is a
// server error.
func grpcOutcome(status string, present bool) backendactor.Outcome {
	if !present {
		return backendactor.ServerError
	}
	code, err := strconv.Atoi(strings.TrimSpace(status))
	if err != nil {
		return backendactor.ServerError
	}
	switch code {
	case grpcUnknown, grpcInternal, grpcUnavailable, grpcDataLoss:
		return backendactor.ServerError
	case grpcCanceled:
		return backendactor.Canceled
	}
	return backendactor.Success
}

// grpcStatus finds grpc-status in a finished gRPC response: in the headers
// of a Trailers-Only answer, else in the trailers, which the transport fills
// once the body has been read to its end (complete says it was).
func grpcStatus(resp *http.Response, complete bool) (string, bool) {
	if v := resp.Header.Values("Grpc-Status"); len(v) > 0 {
		return v[0], true
	}
	if !complete {
		return "", false
	}
	if v := resp.Trailer.Values("Grpc-Status"); len(v) > 0 {
		return v[0], true
	}
	return "", false
}
