package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// maxKeys bounds the distinct X-Backend and X-Lbd-Reject values kept; any
// further value is counted under OtherKey, so a misbehaving server cannot
// grow the result without bound.
const (
	maxKeys  = 64
	OtherKey = "(other)"
	NoneKey  = "(none)" // X-Backend absent
)

// Result is what a run measured. Counts are of requests; latencies are of
// completed requests (a response whose body was read to the end), measured
// from the moment the request was due: its start in closed loop, its
// scheduled arrival in open loop, so a generator that fell behind does not
// hide the delay (no coordinated omission).
type Result struct {
	URL         string        `json:"url"`
	Mode        string        `json:"mode"` // "closed" or "open"
	Concurrency int           `json:"concurrency,omitempty"`
	TargetRate  float64       `json:"target_rate,omitempty"`
	Elapsed     time.Duration `json:"-"`

	Sent      int64 `json:"sent"`      // requests started
	Completed int64 `json:"completed"` // responses received in full, any status
	Errors    int64 `json:"errors"`    // transport errors, by kind in ErrorKinds
	Dropped   int64 `json:"dropped"`   // open loop: arrivals not sent, MaxOutstanding in flight
	Late      int64 `json:"late"`      // open loop: sent more than max(1/Rate, 1ms) after due

	Status     map[int]int64    `json:"status"`
	Reject     map[string]int64 `json:"reject"`  // X-Lbd-Reject values
	Backend    map[string]int64 `json:"backend"` // X-Backend values
	ErrorKinds map[string]int64 `json:"error_kinds"`

	Rate    float64 `json:"rate"`    // completed per second
	Goodput float64 `json:"goodput"` // 2xx per second

	Latency    Percentiles `json:"latency"`
	Latency2xx Percentiles `json:"latency_2xx"`
}

// Count2xx is the number of completed requests with a 2xx status.
func (r *Result) Count2xx() int64 { return r.Latency2xx.Count }

// MarshalJSON adds elapsed_ms.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		ElapsedMS float64 `json:"elapsed_ms"`
	}{plain(r), ms(r.Elapsed)})
}

// Percentiles summarises a latency distribution.
type Percentiles struct {
	Count                    int64
	Min, Mean, P50, P90, P99 time.Duration
	Max                      time.Duration
}

// MarshalJSON writes durations as float milliseconds.
func (p Percentiles) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"count": p.Count, "min_ms": ms(p.Min), "mean_ms": ms(p.Mean),
		"p50_ms": ms(p.P50), "p90_ms": ms(p.P90), "p99_ms": ms(p.P99), "max_ms": ms(p.Max),
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// recorder gathers outcomes from concurrent requests.
type recorder struct {
	mu       sync.Mutex
	res      Result
	all, ok2 histogram
}

func newRecorder() *recorder {
	return &recorder{res: Result{
		Status: map[int]int64{}, Reject: map[string]int64{},
		Backend: map[string]int64{}, ErrorKinds: map[string]int64{},
	}}
}

func (r *recorder) sent() {
	r.mu.Lock()
	r.res.Sent++
	r.mu.Unlock()
}

func (r *recorder) dropped() {
	r.mu.Lock()
	r.res.Dropped++
	r.mu.Unlock()
}

func (r *recorder) late() {
	r.mu.Lock()
	r.res.Late++
	r.mu.Unlock()
}

func (r *recorder) completed(status int, lat time.Duration, backend, reject string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Completed++
	r.res.Status[status]++
	if backend == "" {
		backend = NoneKey
	}
	bump(r.res.Backend, backend)
	if reject != "" {
		bump(r.res.Reject, reject)
	}
	r.all.record(lat)
	if status >= 200 && status < 300 {
		r.ok2.record(lat)
	}
}

func (r *recorder) failed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Errors++
	r.res.ErrorKinds[errorKind(err)]++
}

func bump(m map[string]int64, k string) {
	if _, ok := m[k]; !ok && len(m) >= maxKeys {
		k = OtherKey
	}
	m[k]++
}

// result finishes the Result for a run that took elapsed.
func (r *recorder) result(elapsed time.Duration) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.res
	res.Elapsed = elapsed
	res.Latency = r.all.percentiles()
	res.Latency2xx = r.ok2.percentiles()
	if s := elapsed.Seconds(); s > 0 {
		res.Rate = float64(res.Completed) / s
		res.Goodput = float64(res.Latency2xx.Count) / s
	}
	return &res
}

// errorKind names a transport error's cause with a small fixed vocabulary.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.Is(err, ErrNotLoopback):
		return "not-loopback"
	}
	return "other"
}
