// Command lbd-overload measures lbd under overload with the adaptive
// concurrency limit off and on (AIMD, Gradient2): the scenario of
// docs/SCENARIOS.md, "Overload and adaptive concurrency".
//
//	go build -o bin/lbd ./cmd/lbd
//	go run ./cmd/lbd-overload -lbd bin/lbd [-load 3] [-warmup 5s] [-duration 15s] [-slow-start]
//
// It starts capacity-limited synthetic backends in-process (each serves at
// most -workers requests at once for -service each and queues the rest), runs
// the lbd binary as a child process per mode with a generated config, sends
// open-loop load at -load times the backends' capacity through it, and prints
// a table: goodput, latency of admitted requests, reject rate and the limit
// lbd settled on. Everything listens on loopback ports the kernel picks, and
// every run is bounded in time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the scenario's knobs.
type options struct {
	lbd         string
	modes       []string
	backends    int
	workers     int
	service     time.Duration
	load        float64
	target      time.Duration
	maxInflight int
	warmup      time.Duration
	duration    time.Duration
	timeout     time.Duration
	repeat      int
	slowStart   bool
}

// capacity is the backends' nominal throughput in requests per second.
func (o options) capacity() float64 {
	return float64(o.backends*o.workers) / o.service.Seconds()
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	var modes string
	fs := flag.NewFlagSet("lbd-overload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.lbd, "lbd", "bin/lbd", "the lbd binary to run (make build)")
	fs.StringVar(&modes, "modes", "off,aimd,gradient2", "comma-separated modes: off, aimd, gradient2")
	fs.IntVar(&o.backends, "backends", 3, "synthetic backends")
	fs.IntVar(&o.workers, "workers", 4, "requests each backend serves at once (the rest queue)")
	fs.DurationVar(&o.service, "service", 20*time.Millisecond, "service time of one request")
	fs.Float64Var(&o.load, "load", 3, "offered load as a multiple of the backends' capacity")
	fs.DurationVar(&o.target, "target", 100*time.Millisecond, "aimd.target_latency")
	fs.IntVar(&o.maxInflight, "max-inflight", 1024, "admission.max_inflight (the hard cap, also aimd.max_limit)")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "load before measuring, so the limit settles")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "measured load")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "client timeout per request")
	fs.IntVar(&o.repeat, "repeat", 1, "runs per mode (the table shows each)")
	fs.BoolVar(&o.slowStart, "slow-start", false, "aimd.slow_start: the limit starts at min_limit and doubles")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.modes = strings.Split(modes, ",")
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(o.backends >= 1 && o.backends <= 16, "-backends %d: want 1..16", o.backends)
	check(o.workers >= 1 && o.workers <= 256, "-workers %d: want 1..256", o.workers)
	check(o.service >= time.Millisecond && o.service <= 10*time.Second, "-service %v: want 1ms..10s", o.service)
	check(o.load > 0 && o.load <= 10, "-load %g: want (0, 10]", o.load)
	check(o.capacity()*o.load <= 20_000, "offered load %.0f/s: at most 20000/s on one machine", o.capacity()*o.load)
	check(o.warmup >= 0 && o.warmup <= 5*time.Minute, "-warmup %v: want 0..5m", o.warmup)
	check(o.duration > 0 && o.duration <= 5*time.Minute, "-duration %v: want (0, 5m]", o.duration)
	check(o.maxInflight >= 8, "-max-inflight %d: want at least 8 (aimd.min_limit)", o.maxInflight)
	check(o.repeat >= 1 && o.repeat <= 10, "-repeat %d: want 1..10", o.repeat)
	for _, m := range o.modes {
		check(m == "off" || m == "aimd" || m == "gradient2", "mode %q: want off, aimd or gradient2", m)
	}
	return o, errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "lbd-overload:", err)
		}
		return 2
	}
	logger := log.New(stderr, "lbd-overload: ", 0)
	if _, err := os.Stat(o.lbd); err != nil {
		logger.Printf("%v (build it: go build -o bin/lbd ./cmd/lbd)", err)
		return 1
	}
	res, err := scenario(ctx, o, logger)
	printTable(stdout, o, res)
	if err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}
