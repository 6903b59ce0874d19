// Command lbd-attack measures how lbd holds up against hostile clients:
// the scenario of docs/SCENARIOS.md, "Hostile clients".
//
//	go build -o bin/lbd ./cmd/lbd
//	go run ./cmd/lbd-attack -lbd bin/lbd [-conns 1000] [-duration 10s] [-rate 200] [-attacks slowloris,...]
//	go run ./cmd/lbd-attack -target http://127.0.0.1:3030 -admin http://127.0.0.1:3031 ...
//
// For each attack it keeps -conns hostile connections open against lbd
// (dialling a new one whenever lbd ends one), and meanwhile sends normal
// requests, open loop at -rate per second for -duration, with the load
// generator of internal/loadgen. It prints a table: the normal clients'
// success rate and latency during each attack, lbd's resident memory at
// its peak, and what lbd did to the attackers.
//
// With -lbd it starts the binary as a child process with a generated
// config over synthetic backends in this process; with -target it attacks
// an lbd already running, which must listen on loopback. Every target is
// checked to be loopback, and so is every address dialled. Every run is
// bounded in connections and in time.
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

	"github.com/lbd/lbd/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Bounds of the knobs: enough for the scenario, not enough to hurt a
// shared machine for long.
const (
	maxConns    = 5000
	maxDuration = 2 * time.Minute
	maxRate     = 5000
)

type options struct {
	lbd, target, admin string
	attacks            []string
	conns, floodConns  int
	duration, ramp     time.Duration
	settle, rest       time.Duration
	rate               float64
	drip, pause        time.Duration
	clientStall        time.Duration
	timeout            time.Duration
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	var names string
	fs := flag.NewFlagSet("lbd-attack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.lbd, "lbd", "", "the lbd binary to start (go build -o bin/lbd ./cmd/lbd)")
	fs.StringVar(&o.target, "target", "", "attack this running lbd instead (a loopback http URL)")
	fs.StringVar(&o.admin, "admin", "", "with -target: its admin URL, for memory and counters (optional)")
	fs.StringVar(&names, "attacks", "all", "comma-separated attacks, or all: "+strings.Join(attackNames(), ", "))
	fs.IntVar(&o.conns, "conns", 1000, "attacking connections per attack")
	fs.IntVar(&o.floodConns, "flood-conns", 300, "connections of the header flood")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "normal load measured during each attack")
	fs.DurationVar(&o.ramp, "ramp", 5*time.Second, "at most this long for the attack to open its connections first")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "then this long before measuring, so the attack's first burst is over")
	fs.DurationVar(&o.rest, "rest", 2*time.Second, "pause between two attacks, for lbd to close what the last one left")
	fs.Float64Var(&o.rate, "rate", 200, "normal requests per second (open loop)")
	fs.DurationVar(&o.drip, "drip", time.Second, "slow attacks send one byte this often")
	fs.DurationVar(&o.pause, "pause", time.Second, "a request-at-a-time attack (malformed chunked, header flood) dials again this long after each answer")
	fs.DurationVar(&o.clientStall, "client-stall", 0, "with -lbd: timeouts.client_stall of the generated config (0: lbd's default)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "normal clients' timeout per request")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check((o.lbd == "") != (o.target == ""), "give exactly one of -lbd and -target")
	if o.target != "" {
		if err := loadgen.CheckLoopback(o.target); err != nil {
			errs = append(errs, fmt.Errorf("-target: %w", err))
		}
	}
	if o.admin != "" {
		if err := loadgen.CheckLoopback(o.admin); err != nil {
			errs = append(errs, fmt.Errorf("-admin: %w", err))
		}
	}
	check(o.conns >= 1 && o.conns <= maxConns, "-conns %d: want 1..%d", o.conns, maxConns)
	check(o.floodConns >= 1 && o.floodConns <= maxConns, "-flood-conns %d: want 1..%d", o.floodConns, maxConns)
	check(o.duration > 0 && o.duration <= maxDuration, "-duration %v: want (0, %v]", o.duration, maxDuration)
	check(o.ramp >= 0 && o.ramp <= time.Minute, "-ramp %v: want 0..1m", o.ramp)
	check(o.settle >= 0 && o.settle <= time.Minute, "-settle %v: want 0..1m", o.settle)
	check(o.rest >= 0 && o.rest <= time.Minute, "-rest %v: want 0..1m", o.rest)
	check(o.rate > 0 && o.rate <= maxRate, "-rate %g: want (0, %d]", o.rate, maxRate)
	check(o.drip >= 10*time.Millisecond && o.drip <= time.Minute, "-drip %v: want 10ms..1m", o.drip)
	check(o.pause >= time.Millisecond && o.pause <= 10*time.Second, "-pause %v: want 1ms..10s", o.pause)
	check(o.clientStall >= 0 && o.clientStall <= time.Hour, "-client-stall %v: want 0..1h", o.clientStall)
	check(o.timeout > 0 && o.timeout <= time.Minute, "-timeout %v: want (0, 1m]", o.timeout)
	if names == "all" {
		o.attacks = attackNames()
	} else {
		o.attacks = strings.Split(names, ",")
	}
	for _, n := range o.attacks {
		check(n == "none" || findAttack(n, 1, 1) != nil, "attack %q: want none or one of %s", n, strings.Join(attackNames(), ", "))
	}
	return o, errors.Join(errs...)
}

// attackNames are the short names of the attacks, in table order.
func attackNames() []string {
	return []string{"slowloris", "slow-body", "no-read", "bad-chunked", "idle", "header-flood"}
}

// findAttack returns the attack of a short name, sized, or nil.
func findAttack(name string, conns, floodConns int) *attack {
	all := attacks(conns, floodConns)
	for i, n := range attackNames() {
		if n == name {
			return &all[i]
		}
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "lbd-attack:", err)
		}
		return 2
	}
	logger := log.New(stderr, "lbd-attack: ", 0)
	if o.lbd != "" {
		if _, err := os.Stat(o.lbd); err != nil {
			logger.Printf("%v (build it: go build -o bin/lbd ./cmd/lbd)", err)
			return 1
		}
	}
	rows, err := scenario(ctx, o, logger)
	printTable(stdout, o, rows)
	if err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}
