// Command lbd-backend is a synthetic HTTP backend for trying lbd: it answers
// after a configurable latency, fails or hangs a configurable fraction of
// requests, and reports a configurable health status. Knobs can be changed
// while it runs with GET/PUT /_knobs; see package cmd/internal/synth.
//
//	lbd-backend -addr 127.0.0.1:8081 -name b1 -latency 10ms -jitter 2ms -error-rate 0.1
//
// It prints its URL on stdout and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lbd/lbd/internal/synth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "lbd-backend:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, when non-nil, receives the running
// backend once it listens (tests use it to learn the kernel-chosen port).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready ...chan<- *synth.Running) error {
	fs := flag.NewFlagSet("lbd-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address (host:port; port 0 lets the kernel pick)")
	var k synth.Knobs
	fs.StringVar(&k.Name, "name", "b1", "backend name, sent in X-Backend")
	fs.DurationVar(&k.Latency, "latency", 10*time.Millisecond, "base response delay")
	fs.DurationVar(&k.Jitter, "jitter", 2*time.Millisecond, "delay varies uniformly by ± this much")
	fs.Float64Var(&k.ErrorRate, "error-rate", 0, "fraction of requests answered with -error-status (0..1)")
	fs.IntVar(&k.ErrorStatus, "error-status", 500, "status of failed requests")
	fs.Float64Var(&k.HangRate, "hang-rate", 0, "fraction of requests that never answer (0..1)")
	fs.IntVar(&k.HealthStatus, "health-status", 200, "status of /healthz")
	fs.IntVar(&k.Size, "size", 64, "response body bytes")
	seed := fs.Uint64("seed", 0, "random seed for error/hang/jitter decisions (0: random)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := k.Validate(); err != nil {
		return err
	}
	var opts []synth.Option
	if *seed != 0 {
		opts = append(opts, synth.WithSeed(*seed))
	}
	r, err := synth.Start(*addr, k, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, r.URL())
	for _, c := range ready {
		c <- r
	}
	<-ctx.Done()
	return r.Close()
}
