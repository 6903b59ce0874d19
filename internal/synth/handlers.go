package synth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Limits on /sse parameters: a stream is bounded in count and in pace.
const (
	maxEvents     = 10000
	maxEventEvery = time.Minute
)

// filler is the default path's body pattern, written in chunks of its size.
var filler = func() []byte {
	const line = "lbd synthetic payload 0123456789abcdefghijklmnopqrstuvwxyz.....\n"
	b := make([]byte, 0, 32<<10)
	for len(b)+len(line) <= cap(b) {
		b = append(b, line...)
	}
	return b
}()

// decision is what the default path does with one request.
type decision int

const (
	answer decision = iota
	fail
	hang
)

// draw decides a request's fate and its delay from one locked use of rnd.
// Hang takes the first HangRate of [0,1), error the next ErrorRate.
func (s *Server) draw(k Knobs) (decision, time.Duration) {
	s.rmu.Lock()
	u := s.rnd.Float64()
	j := s.rnd.Float64()
	s.rmu.Unlock()
	d := k.Latency
	if k.Jitter > 0 {
		d += time.Duration((2*j - 1) * float64(k.Jitter))
	}
	d = max(d, 0)
	switch {
	case u < k.HangRate:
		return hang, d
	case u < k.HangRate+k.ErrorRate:
		return fail, d
	}
	return answer, d
}

// sleep waits d, or less if the request's context ends or the server
// closes; it reports whether the full d elapsed.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

func (s *Server) serveDefault(w http.ResponseWriter, r *http.Request, k Knobs) {
	dec, d := s.draw(k)
	if dec == hang {
		d = MaxDelay // released only by the client leaving or Close
	}
	if !s.sleep(r.Context(), d) {
		// The client is gone (nothing to say) or the server is closing.
		http.Error(w, "synthetic backend closed", http.StatusServiceUnavailable)
		return
	}
	if dec == fail {
		http.Error(w, "synthetic error", k.ErrorStatus)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(k.Size))
	w.WriteHeader(http.StatusOK)
	for left := k.Size; left > 0; {
		n := min(left, len(filler))
		if _, err := w.Write(filler[:n]); err != nil {
			return
		}
		left -= n
	}
}

func (s *Server) serveKnobs(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPut:
		k := s.Knobs()
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&k); err != nil {
			writeError(w, http.StatusBadRequest, "knobs: "+err.Error())
			return
		}
		if err := k.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, "knobs: "+err.Error())
			return
		}
		s.SetKnobs(k)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeError(w, http.StatusMethodNotAllowed, "knobs: use GET or PUT")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Knobs())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	n, every := 5, 10*time.Millisecond
	q := r.URL.Query()
	if v := q.Get("n"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 || i > maxEvents {
			http.Error(w, fmt.Sprintf("n must be an integer in 0..%d", maxEvents), http.StatusBadRequest)
			return
		}
		n = i
	}
	if v := q.Get("every"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxEventEvery {
			http.Error(w, fmt.Sprintf("every must be a duration in 0..%v", maxEventEvery), http.StatusBadRequest)
			return
		}
		every = d
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	name := s.Knobs().Name
	for i := 1; i <= n; i++ {
		if i > 1 && !s.sleep(r.Context(), every) {
			return
		}
		if _, err := fmt.Fprintf(w, "id: %d\ndata: {\"n\":%d,\"backend\":%q}\n\n", i, i, name); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// serveEcho streams the request body back as it arrives, flushing after each
// read, so a proxy that buffers either direction shows up in a test.
func (s *Server) serveEcho(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// HTTP/1 handlers may not read the body after writing unless full duplex
	// is on; HTTP/2 always is, and answers ErrNotSupported, which is fine.
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func serveStatus(w http.ResponseWriter, code string) {
	c, err := strconv.Atoi(code)
	if err != nil || c < 200 || c > 599 {
		http.Error(w, "status must be 200-599", http.StatusBadRequest)
		return
	}
	http.Error(w, http.StatusText(c), c)
}
