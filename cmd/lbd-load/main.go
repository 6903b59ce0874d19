// Command lbd-load sends a bounded burst of HTTP load to a loopback target
// and reports counts, rates, rejections, backend distribution and latency
// percentiles. It refuses any target that is not loopback.
//
//	lbd-load -c 20 -n 5000 http://127.0.0.1:3030/       5000 requests (or 10s, the default -d)
//	lbd-load -c 32 -d 10s http://127.0.0.1:3030/        for 10s
//	lbd-load -rate 500 -d 10s -json http://127.0.0.1:3030/
//
// With -rate it runs an open loop (constant arrivals, at most
// -max-outstanding in flight); otherwise a closed loop of -c workers. With
// -n the run ends after -n requests or -d, whichever comes first; with -d
// alone it runs for -d; with neither, 1000 requests within 10s. See
// package internal/loadgen.
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
	cfg, asJSON, code := parse(args, stdout, stderr)
	if code >= 0 {
		return code
	}
	res, err := loadgen.Run(ctx, cfg)
	if res == nil {
		fmt.Fprintln(stderr, "lbd-load:", err)
		return 1
	}
	if asJSON {
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

// parse reads the flags into a run's config. code is -1 to go on, else
// the exit code (0 after -h, 2 for bad usage).
func parse(args []string, stdout, stderr io.Writer) (cfg loadgen.Config, asJSON bool, code int) {
	fs := flag.NewFlagSet("lbd-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // -h prints the usage on standard output below; errors print themselves
	hdr := headers{}
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:3030/", "target URL (loopback only); may also be the first argument")
	fs.IntVar(&cfg.Concurrency, "c", loadgen.DefaultConcurrency, "closed loop: concurrent workers")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second (0: closed loop)")
	fs.IntVar(&cfg.MaxOutstanding, "max-outstanding", loadgen.DefaultMaxOutstanding, "open loop: cap on requests in flight; arrivals beyond it are dropped and counted")
	fs.IntVar(&cfg.N, "n", loadgen.DefaultN, fmt.Sprintf("total requests (max %d); with -d and without -n the run is bound by -d alone", loadgen.MaxN))
	fs.DurationVar(&cfg.Duration, "d", loadgen.DefaultDuration, fmt.Sprintf("stop starting requests after this long (max %v)", loadgen.MaxDuration))
	fs.StringVar(&cfg.Method, "method", "GET", "HTTP method")
	fs.IntVar(&cfg.BodySize, "body-size", 0, "request body bytes")
	fs.DurationVar(&cfg.Timeout, "timeout", loadgen.DefaultTimeout, "per-request timeout")
	fs.Var(hdr, "H", `request header "Name: value" (repeatable; "Host: x" sets the Host), as curl's -H`)
	fs.BoolVar(&cfg.H2C, "h2c", false, "speak cleartext HTTP/2 (prior knowledge)")
	fs.BoolVar(&cfg.Insecure, "k", false, "skip TLS certificate verification (https targets)")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, "Usage: lbd-load [flags] [URL]\n\n"+
			"Bounded HTTP load against a loopback target: counts, rates, rejections, the backends\n"+
			"seen (X-Backend) and latency percentiles. With -n it stops after -n requests or -d,\n"+
			"whichever comes first; with -d alone after -d; with neither after 1000 requests or 10s.\n\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return cfg, false, 0
	case err != nil:
		fmt.Fprintln(stderr, "run lbd-load -h for the usage")
		return cfg, false, 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["d"] && !set["n"] {
		cfg.N = loadgen.MaxN // -d alone: the duration bounds the run
	}
	switch fs.NArg() {
	case 0:
	case 1:
		cfg.URL = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "lbd-load: one target expected, got %q\n", fs.Args())
		return cfg, false, 2
	}
	if !strings.Contains(cfg.URL, "://") {
		cfg.URL = "http://" + cfg.URL
	}
	if len(hdr) > 0 {
		cfg.Header = http.Header(hdr)
	}
	return cfg, asJSON, -1
}
