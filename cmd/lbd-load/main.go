// Command lbd-load sends a bounded burst of HTTP load to a loopback target
// and reports counts, rates, rejections, backend distribution and latency
// percentiles. It refuses any target that is not loopback.
//
//	lbd-load -url http://127.0.0.1:3030/ -c 20 -n 5000 -d 30s
//	lbd-load -url http://127.0.0.1:3030/ -rate 500 -d 10s -json
//
// With -rate it runs an open loop (constant arrivals, at most
// -max-outstanding in flight); otherwise a closed loop of -c workers. The
// run ends after -n requests or -d, whichever comes first. See package
// cmd/internal/loadgen.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lbd/lbd/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// headers is a repeatable "Name: value" flag.
type headers http.Header

func (h headers) String() string { return fmt.Sprint(http.Header(h)) }

func (h headers) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("header %q must look like \"Name: value\"", s)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

// run returns the exit code: 0 done, 1 failed to run, 2 bad usage, 130
// interrupted (the partial result is still printed).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lbd-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	hdr := headers{}
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:3030/", "target URL (loopback only); may also be the first argument")
	fs.IntVar(&cfg.Concurrency, "c", loadgen.DefaultConcurrency, "closed loop: concurrent workers")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second (0: closed loop)")
	fs.IntVar(&cfg.MaxOutstanding, "max-outstanding", loadgen.DefaultMaxOutstanding, "open loop: cap on requests in flight; arrivals beyond it are dropped and counted")
	fs.IntVar(&cfg.N, "n", loadgen.DefaultN, fmt.Sprintf("total requests (max %d)", loadgen.MaxN))
	fs.DurationVar(&cfg.Duration, "d", loadgen.DefaultDuration, fmt.Sprintf("stop starting requests after this long (max %v)", loadgen.MaxDuration))
	fs.StringVar(&cfg.Method, "method", "GET", "HTTP method")
	fs.IntVar(&cfg.BodySize, "body-size", 0, "request body bytes")
	fs.DurationVar(&cfg.Timeout, "timeout", loadgen.DefaultTimeout, "per-request timeout")
	fs.Var(hdr, "h", `request header "Name: value" (repeatable; "Host: x" sets the Host)`)
	fs.Var(hdr, "H", "same as -h")
	fs.BoolVar(&cfg.H2C, "h2c", false, "speak cleartext HTTP/2 (prior knowledge)")
	fs.BoolVar(&cfg.Insecure, "k", false, "skip TLS certificate verification (https targets)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch fs.NArg() {
	case 0:
	case 1:
		cfg.URL = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "lbd-load: one target expected, got %q\n", fs.Args())
		return 2
	}
	if !strings.Contains(cfg.URL, "://") {
		cfg.URL = "http://" + cfg.URL
	}
	if len(hdr) > 0 {
		cfg.Header = http.Header(hdr)
	}

	res, err := loadgen.Run(ctx, cfg)
	if res == nil {
		fmt.Fprintln(stderr, "lbd-load:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = errors.Join(err, enc.Encode(res))
	} else {
		err = errors.Join(err, res.WriteTable(stdout))
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "lbd-load: interrupted; partial result above")
		return 130
	}
	if err != nil {
		fmt.Fprintln(stderr, "lbd-load:", err)
		return 1
	}
	return 0
}
