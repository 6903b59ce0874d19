// Command lbd-failure measures how lbd detects failing backends and brings
// them back: the scenarios of docs/SCENARIOS.md, "Failure detection and
// recovery".
//
//	go build -o bin/lbd ./cmd/lbd
//	go run ./cmd/lbd-failure detect -lbd bin/lbd [-down 5s] [-rate 200] [-full-weight]
//	go run ./cmd/lbd-failure flaky  -lbd bin/lbd [-modes none,breaker,outlier,retries,all] [-duration 30s] [-repeat 3]
//	go run ./cmd/lbd-failure recover -lbd bin/lbd [-rate 1000] [-slower 20ms] [-spell 10s]
//	go run ./cmd/lbd-failure kill   -lbd bin/lbd -backend bin/lbd-backend [-c 16] [-runs 10]
//
// detect: four synthetic backends and lbd at its default settings; one
// backend dies with no traffic (only the health checks can tell), comes back
// after -down, then another dies under an open-loop load of -rate requests/s
// and comes back. It prints how long each step took next to what lbd's
// defaults predict.
//
// flaky: four backends, one answering 500 to -error-rate of its requests;
// for each mode (breaker, outlier detection and retries on or off) a fresh
// lbd, a closed-loop load of -c clients for -duration, and the share of
// requests a client saw fail.
//
// recover: three backends under p2c-ewma at an open-loop rate; the third
// turns -slower for -spell and is then exactly as fast as the others. It
// prints how long it took to be back above a -share of the requests, next to
// what the EWMA's decay predicts (issue 10).
//
// kill: three lbd-backend processes, -c closed-loop GET clients; one backend
// is SIGKILLed mid-load; it counts the errors clients saw, over -runs runs
// (issue 19: the aim is none).
//
// lbd runs as a child process with a generated config; the backends (except
// kill's) and the load generator run in this process. Everything listens on loopback ports
// the kernel picks, and every run is bounded in time.
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

const usage = `usage: lbd-failure detect|flaky|recover|kill [flags]   (-h after the scenario lists its flags)`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	logger := log.New(stderr, "lbd-failure: ", 0)
	switch args[0] {
	case "detect":
		return scenario[detectOptions, *detectResult]{parseDetect,
			func(o detectOptions) []string { return []string{o.lbd} }, detect, printDetect, false}.main(ctx, args[1:], stdout, stderr, logger)
	case "flaky":
		return scenario[flakyOptions, []flakyRun]{parseFlaky,
			func(o flakyOptions) []string { return []string{o.lbd} }, flaky, printFlaky, true}.main(ctx, args[1:], stdout, stderr, logger)
	case "recover":
		return scenario[recoverOptions, *recoverResult]{parseRecover,
			func(o recoverOptions) []string { return []string{o.lbd} }, recoverScenario, printRecover, false}.main(ctx, args[1:], stdout, stderr, logger)
	case "kill":
		return scenario[killOptions, []killRun]{parseKill,
			func(o killOptions) []string { return []string{o.lbd, o.backend} }, killScenario, printKill, true}.main(ctx, args[1:], stdout, stderr, logger)
	default:
		fmt.Fprintf(stderr, "lbd-failure: unknown scenario %q\n%s\n", args[0], usage)
		return 2
	}
}

// scenario is one scenario's steps: parse its flags, check the binaries it
// runs, run it, print what it measured. A scenario of several runs (partial)
// prints the runs it finished even when a later one failed.
type scenario[O, R any] struct {
	parse    func([]string, io.Writer) (O, error)
	binaries func(O) []string
	run      func(context.Context, O, *log.Logger) (R, error)
	print    func(io.Writer, O, R)
	partial  bool
}

func (s scenario[O, R]) main(ctx context.Context, args []string, stdout, stderr io.Writer, logger *log.Logger) int {
	o, err := s.parse(args, stderr)
	if err != nil {
		return flagError(err, stderr)
	}
	for _, b := range s.binaries(o) {
		if !binaryExists(b, logger) {
			return 1
		}
	}
	res, err := s.run(ctx, o, logger)
	if err == nil || s.partial {
		s.print(stdout, o, res)
	}
	if err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}

func flagError(err error, stderr io.Writer) int {
	if !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "lbd-failure:", err)
	}
	return 2
}

func binaryExists(path string, logger *log.Logger) bool {
	if _, err := os.Stat(path); err != nil {
		logger.Printf("%v (build it: make build, or go build -o bin/lbd ./cmd/lbd and go build -o bin/lbd-backend ./cmd/lbd-backend)", err)
		return false
	}
	return true
}

func parseDetect(args []string, stderr io.Writer) (detectOptions, error) {
	var o detectOptions
	fs := flag.NewFlagSet("lbd-failure detect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.lbd, "lbd", "bin/lbd", "the lbd binary to run (make build)")
	fs.DurationVar(&o.down, "down", 5*time.Second, "how long a dead backend stays dead")
	fs.Float64Var(&o.rate, "rate", 200, "open-loop requests/s during the under-load half")
	fs.BoolVar(&o.fullWeight, "full-weight", false, "also wait for the warm-up ramp to end (adds about warmup.duration twice)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if o.down < 0 || o.down > 5*time.Minute {
		errs = append(errs, fmt.Errorf("-down %v: want 0..5m", o.down))
	}
	if o.rate <= 0 || o.rate > 5000 {
		errs = append(errs, fmt.Errorf("-rate %g: want (0, 5000]", o.rate))
	}
	return o, errors.Join(errs...)
}

func parseFlaky(args []string, stderr io.Writer) (flakyOptions, error) {
	var o flakyOptions
	var modes string
	fs := flag.NewFlagSet("lbd-failure flaky", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.lbd, "lbd", "bin/lbd", "the lbd binary to run (make build)")
	fs.StringVar(&modes, "modes", strings.Join(flakyModeNames(), ","), "comma-separated modes: "+strings.Join(flakyModeNames(), ", "))
	fs.Float64Var(&o.errorRate, "error-rate", 0.3, "share of the flaky backend's requests answered 500")
	fs.IntVar(&o.concurrency, "c", 16, "clients (closed loop)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "load per run")
	fs.IntVar(&o.repeat, "repeat", 1, "runs per mode")
	fs.BoolVar(&o.aimd, "aimd", false, "keep the adaptive concurrency limit on (it reads the 5xx share as overload)")
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
	for _, m := range o.modes {
		check(strings.Contains(","+strings.Join(flakyModeNames(), ",")+",", ","+m+","), "mode %q: want one of %s", m, strings.Join(flakyModeNames(), ", "))
	}
	check(o.errorRate >= 0 && o.errorRate <= 1, "-error-rate %g: want 0..1", o.errorRate)
	check(o.concurrency >= 1 && o.concurrency <= 256, "-c %d: want 1..256", o.concurrency)
	check(o.duration > 0 && o.duration <= 5*time.Minute, "-duration %v: want (0, 5m]", o.duration)
	check(o.repeat >= 1 && o.repeat <= 10, "-repeat %d: want 1..10", o.repeat)
	return o, errors.Join(errs...)
}

func parseRecover(args []string, stderr io.Writer) (recoverOptions, error) {
	var o recoverOptions
	fs := flag.NewFlagSet("lbd-failure recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.lbd, "lbd", "bin/lbd", "the lbd binary to run (make build)")
	fs.Float64Var(&o.rate, "rate", 1000, "open-loop requests/s")
	fs.DurationVar(&o.latency, "latency", time.Millisecond, "every backend's latency")
	fs.DurationVar(&o.slower, "slower", 20*time.Millisecond, "added to the third backend's latency during the spell")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "load before the spell")
	fs.DurationVar(&o.spell, "spell", 10*time.Second, "how long the third backend is slower")
	fs.DurationVar(&o.after, "after", 15*time.Second, "load after the spell")
	fs.DurationVar(&o.window, "window", 250*time.Millisecond, "share sampling window")
	fs.Float64Var(&o.share, "share", 0.2, "the share that counts as back")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(o.rate > 0 && o.rate <= 5000, "-rate %g: want (0, 5000]", o.rate)
	check(o.latency >= 0 && o.latency <= time.Second, "-latency %v: want 0..1s", o.latency)
	check(o.slower > 0 && o.slower <= 10*time.Second, "-slower %v: want (0, 10s]", o.slower)
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-warmup", o.warmup}, {"-spell", o.spell}, {"-after", o.after}} {
		check(d.v > 0 && d.v <= 5*time.Minute, "%s %v: want (0, 5m]", d.name, d.v)
	}
	check(o.window >= 50*time.Millisecond && o.window <= 10*time.Second, "-window %v: want 50ms..10s", o.window)
	check(o.share > 0 && o.share < 1, "-share %g: want (0, 1)", o.share)
	return o, errors.Join(errs...)
}

func parseKill(args []string, stderr io.Writer) (killOptions, error) {
	var o killOptions
	fs := flag.NewFlagSet("lbd-failure kill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.lbd, "lbd", "bin/lbd", "the lbd binary to run (make build)")
	fs.StringVar(&o.backend, "backend", "bin/lbd-backend", "the lbd-backend binary to run the backends with (make build)")
	fs.IntVar(&o.concurrency, "c", 16, "GET clients (closed loop)")
	fs.DurationVar(&o.before, "before", 2*time.Second, "load before the kill")
	fs.DurationVar(&o.after, "after", 3*time.Second, "load after the kill")
	fs.IntVar(&o.runs, "runs", 10, "runs")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(o.concurrency >= 1 && o.concurrency <= 256, "-c %d: want 1..256", o.concurrency)
	check(o.before > 0 && o.before <= time.Minute, "-before %v: want (0, 1m]", o.before)
	check(o.after > 0 && o.after <= time.Minute, "-after %v: want (0, 1m]", o.after)
	check(o.runs >= 1 && o.runs <= 50, "-runs %d: want 1..50", o.runs)
	return o, errors.Join(errs...)
}

// tempDir makes a directory for one lbd's config and log.
func tempDir() (string, error) { return os.MkdirTemp("", "lbd-failure-") }

// removeUnlessFailed removes dir after a successful run and keeps it, with
// lbd's log, after a failed one.
func removeUnlessFailed(dir string, err *error) {
	if *err == nil {
		_ = os.RemoveAll(dir)
	}
}
