package loadgen

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Defaults and bounds. A zero Config field takes its default; a value beyond
// its bound is rejected by Validate.
const (
	DefaultN              = 1000
	DefaultDuration       = 10 * time.Second
	DefaultConcurrency    = 10
	DefaultMaxOutstanding = 256
	DefaultTimeout        = 5 * time.Second

	MaxN           = 10_000_000
	MaxDuration    = time.Hour
	MaxConcurrency = 10_000
	MaxRate        = 100_000
	MaxBodySize    = 64 << 20
)

// ErrNotLoopback is returned for a target whose host is not loopback.
var ErrNotLoopback = errors.New("target is not a loopback address (127.0.0.0/8, ::1 or localhost)")

// Config is one load run.
type Config struct {
	URL      string      // target, http or https, loopback host only
	Method   string      // default GET
	Header   http.Header // sent on every request; a "Host" entry sets the Host header
	BodySize int         // request body bytes (0: no body)
	Timeout  time.Duration

	Concurrency    int     // closed-loop workers; ignored when Rate > 0
	Rate           float64 // open-loop arrivals per second; > 0 selects open loop
	MaxOutstanding int     // open loop: cap on requests in flight

	N        int           // total requests (open loop: arrivals, including dropped)
	Duration time.Duration // stop starting requests after this long

	H2C      bool         // speak cleartext HTTP/2 (prior knowledge) to an http:// target
	Insecure bool         // skip TLS verification for an https:// target
	Client   *http.Client // optional; replaces the built-in client (tests inject transports)

	// dispatched, when set by a test in this package, runs once no further
	// request will be started, before Run waits for the ones in flight.
	dispatched func()
}

// Mode is "open" when Rate > 0, else "closed".
func (c Config) Mode() string {
	if c.Rate > 0 {
		return "open"
	}
	return "closed"
}

func (c Config) withDefaults() Config {
	if c.Method == "" {
		c.Method = http.MethodGet
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxOutstanding == 0 {
		c.MaxOutstanding = DefaultMaxOutstanding
	}
	if c.N == 0 {
		c.N = DefaultN
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	return c
}

// Validate reports every problem with c (after defaults), each as a sentence.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := CheckLoopback(c.URL); err != nil {
		errs = append(errs, err)
	}
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.N > 0 && c.N <= MaxN, "n %d must be between 1 and %d", c.N, MaxN)
	check(c.Duration > 0 && c.Duration <= MaxDuration, "duration %v must be between 0 and %v", c.Duration, MaxDuration)
	check(c.Timeout > 0 && c.Timeout <= MaxDuration, "timeout %v must be between 0 and %v", c.Timeout, MaxDuration)
	check(c.Concurrency > 0 && c.Concurrency <= MaxConcurrency, "concurrency %d must be between 1 and %d", c.Concurrency, MaxConcurrency)
	check(c.Rate >= 0 && c.Rate <= MaxRate, "rate %v must be between 0 and %d per second", c.Rate, MaxRate)
	check(c.MaxOutstanding > 0 && c.MaxOutstanding <= MaxConcurrency, "max outstanding %d must be between 1 and %d", c.MaxOutstanding, MaxConcurrency)
	check(c.BodySize >= 0 && c.BodySize <= MaxBodySize, "body size %d must be between 0 and %d", c.BodySize, MaxBodySize)
	check(validMethod(c.Method), "method %q is not a valid HTTP method token", c.Method)
	return errors.Join(errs...)
}

func validMethod(m string) bool {
	return m != "" && !strings.ContainsAny(m, " \t\r\n()<>@,;:\\\"/[]?={}")
}

// CheckLoopback returns nil when raw is an http(s) URL whose host is a
// loopback IP or "localhost", and an error wrapping ErrNotLoopback when the
// host is anything else.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("target %q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("target %q: no host", raw)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q: %w", raw, ErrNotLoopback)
}
