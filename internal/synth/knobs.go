package synth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Bounds that keep a misconfigured knob from turning the backend into a
// resource hog: a body is at most MaxSize bytes, a delay at most MaxDelay.
const (
	MaxSize  = 64 << 20
	MaxDelay = time.Hour
)

// Knobs is how a synthetic backend behaves. The zero value answers 200
// immediately with an empty body; zero ErrorStatus and HealthStatus mean 500
// and 200.
type Knobs struct {
	Name         string        // sent back in X-Backend on every response
	Latency      time.Duration // base delay of the default path
	Jitter       time.Duration // delay is Latency ± Jitter, uniform, never negative
	ErrorRate    float64       // fraction of default-path requests answered with ErrorStatus
	ErrorStatus  int           // default 500
	HangRate     float64       // fraction that never answer until the client leaves or the server closes
	HealthStatus int           // status of /healthz, default 200
	Size         int           // response body bytes of the default path
}

// withDefaults fills the zero-means-default fields and clamps the rest into
// range, so a Server never holds knobs it cannot act on.
func (k Knobs) withDefaults() Knobs {
	if k.ErrorStatus == 0 {
		k.ErrorStatus = 500
	}
	if k.HealthStatus == 0 {
		k.HealthStatus = 200
	}
	k.Latency = min(max(k.Latency, 0), MaxDelay)
	k.Jitter = min(max(k.Jitter, 0), MaxDelay)
	k.ErrorRate = min(max(k.ErrorRate, 0), 1)
	k.HangRate = min(max(k.HangRate, 0), 1)
	k.Size = min(max(k.Size, 0), MaxSize)
	return k
}

// Validate reports, as a sentence a user can act on, the first knob that is
// out of range. SetKnobs clamps instead; the HTTP knob endpoint and the
// lbd-backend flags validate so a typo is not silently clamped.
func (k Knobs) Validate() error {
	var errs []error
	if k.Latency < 0 || k.Latency > MaxDelay {
		errs = append(errs, fmt.Errorf("latency %v must be between 0 and %v", k.Latency, MaxDelay))
	}
	if k.Jitter < 0 || k.Jitter > MaxDelay {
		errs = append(errs, fmt.Errorf("jitter %v must be between 0 and %v", k.Jitter, MaxDelay))
	}
	if k.ErrorRate < 0 || k.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("error rate %v must be between 0 and 1", k.ErrorRate))
	}
	if k.HangRate < 0 || k.HangRate > 1 {
		errs = append(errs, fmt.Errorf("hang rate %v must be between 0 and 1", k.HangRate))
	}
	if k.ErrorRate+k.HangRate > 1 {
		errs = append(errs, fmt.Errorf("error rate plus hang rate (%v) must not exceed 1", k.ErrorRate+k.HangRate))
	}
	if k.ErrorStatus != 0 && (k.ErrorStatus < 100 || k.ErrorStatus > 599) {
		errs = append(errs, fmt.Errorf("error status %d must be an HTTP status (100-599)", k.ErrorStatus))
	}
	if k.HealthStatus != 0 && (k.HealthStatus < 100 || k.HealthStatus > 599) {
		errs = append(errs, fmt.Errorf("health status %d must be an HTTP status (100-599)", k.HealthStatus))
	}
	if k.Size < 0 || k.Size > MaxSize {
		errs = append(errs, fmt.Errorf("size %d must be between 0 and %d bytes", k.Size, MaxSize))
	}
	return errors.Join(errs...)
}

// knobsJSON is the wire form: durations as Go duration strings ("250ms").
type knobsJSON struct {
	Name         string  `json:"name"`
	Latency      string  `json:"latency"`
	Jitter       string  `json:"jitter"`
	ErrorRate    float64 `json:"error_rate"`
	ErrorStatus  int     `json:"error_status"`
	HangRate     float64 `json:"hang_rate"`
	HealthStatus int     `json:"health_status"`
	Size         int     `json:"size"`
}

// MarshalJSON writes durations as Go duration strings.
func (k Knobs) MarshalJSON() ([]byte, error) {
	return json.Marshal(knobsJSON{
		Name: k.Name, Latency: k.Latency.String(), Jitter: k.Jitter.String(),
		ErrorRate: k.ErrorRate, ErrorStatus: k.ErrorStatus, HangRate: k.HangRate,
		HealthStatus: k.HealthStatus, Size: k.Size,
	})
}

// UnmarshalJSON decodes on top of the receiver's current values, so a
// document naming only some knobs changes only those: PUT /_knobs with
// {"latency":"500ms"} slows a backend and leaves the rest alone.
func (k *Knobs) UnmarshalJSON(b []byte) error {
	w := knobsJSON{
		Name: k.Name, Latency: k.Latency.String(), Jitter: k.Jitter.String(),
		ErrorRate: k.ErrorRate, ErrorStatus: k.ErrorStatus, HangRate: k.HangRate,
		HealthStatus: k.HealthStatus, Size: k.Size,
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	lat, err := time.ParseDuration(w.Latency)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	jit, err := time.ParseDuration(w.Jitter)
	if err != nil {
		return fmt.Errorf("jitter: %w", err)
	}
	*k = Knobs{
		Name: w.Name, Latency: lat, Jitter: jit, ErrorRate: w.ErrorRate,
		ErrorStatus: w.ErrorStatus, HangRate: w.HangRate,
		HealthStatus: w.HealthStatus, Size: w.Size,
	}
	return nil
}
