package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/lbd/lbd/scheduler"
)

// RejectNoBackend is the X-Lbd-Reject reason when no backend is eligible.
const RejectNoBackend = "no-backend"

// errorHandler answers when no backend produced a response: 503 with
// X-Lbd-Reject: no-backend when none was eligible, 504 on an upstream
// timeout, 502 on any other upstream failure. A client that went away gets
// nothing (there is no one to answer) and is logged with status 499.
func (h *Handler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	if st == nil { // ReverseProxy's own early errors (bad upgrade) arrive with our state too; be safe
		http.Error(w, http.StatusText(http.StatusBadGateway), http.StatusBadGateway)
		return
	}
	switch {
	case st.answerBodyFailure(r):
		err = fmt.Errorf("client: %w", err)
	case localExhaustion(err):
		st.reject(http.StatusServiceUnavailable, RejectOverload, overloadRetryAfter)
	case errors.Is(err, scheduler.ErrNoBackend) && st.attempts == 0:
		st.reject(http.StatusServiceUnavailable, RejectNoBackend, 0)
	case isBodyTooLarge(err):
		st.reject(http.StatusRequestEntityTooLarge, RejectBodyTooLarge, 0)
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		st.status = 499 // nginx's "client closed request"; never sent
	case isTimeout(err):
		st.fail(http.StatusGatewayTimeout, "")
	default:
		st.fail(http.StatusBadGateway, "")
	}
	if !errors.Is(err, context.Canceled) {
		h.log.Debug("upstream error", "req_id", st.id, "err", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
