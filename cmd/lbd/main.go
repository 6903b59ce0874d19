// Command lbd is the lbd load balancer daemon.
//
//	lbd [-config FILE] [-listen ADDR] [-admin ADDR] [-pidfile FILE]   run
//	lbd -demo                                         run with embedded demo backends in two pools
//	lbd -check -config FILE                           validate a config file
//	lbd -version                                      print version information
//	lbd -healthcheck URL                              GET URL, exit 0 on 200 (container HEALTHCHECK)
//	lbd -h                                            the usage, grouped
//	lbd ctl [-admin ADDR] [-o table|json] COMMAND     the admin API's command-line client
//
// This is the entry point only: flags, environment, signals (lifecycle.go:
// SIGHUP, SIGUSR1, SIGTERM, and systemd's sd_notify), the pid file, and
// the -check and -demo modes. The daemon itself is package daemon, the
// client package ctl.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/ctl"
	"github.com/lbd/lbd/daemon"
	"github.com/lbd/lbd/internal/sdnotify"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	config, listen, admin, pidfile, healthcheck string
	demo, check, version                        bool
}

// errHelp is -h, -help or "lbd help": the usage, and exit 0.
var errHelp = errors.New("help")

func parseFlags(args []string, stdout, stderr io.Writer) (flags, error) {
	var f flags
	fs := flagSet(&f, stderr)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout, fs)
		return f, errHelp
	case err != nil:
		fmt.Fprintln(stderr, "run lbd -h for the usage")
		return f, err
	case fs.NArg() == 1 && fs.Arg(0) == "help":
		usage(stdout, fs)
		return f, errHelp
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "lbd: unknown command or stray argument %q: lbd takes flags, or ctl and its command (lbd -h lists them)\n", fs.Arg(0))
		return f, errors.New("stray arguments")
	}
	return f, nil
}

// flagSet defines lbd's flags into f.
func flagSet(f *flags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("lbd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // parse errors print themselves; -h prints the grouped usage below
	fs.StringVar(&f.config, "config", "", "config `FILE` (default: ./config.json if present, else built-in defaults)")
	fs.StringVar(&f.listen, "listen", "", "data-plane listen `ADDR` (default :3030; env LB_PORT sets the port)")
	fs.StringVar(&f.admin, "admin", "", "admin listen `ADDR` (default 127.0.0.1:3031; env LB_ADMIN_ADDR)")
	fs.StringVar(&f.pidfile, "pidfile", "", "write the process id to `FILE` once started; removed at exit")
	fs.BoolVar(&f.demo, "demo", false, "start embedded demo backends on loopback, in two pools, and balance over them")
	fs.BoolVar(&f.check, "check", false, "validate the -config file and the files it names, and exit: 0 ok, 1 problems")
	fs.BoolVar(&f.version, "version", false, "print version, Go version and commit, and exit")
	fs.StringVar(&f.healthcheck, "healthcheck", "", "GET `URL` (the admin /healthz) and exit 0 on 200, else 1: a container HEALTHCHECK without curl")
	return fs
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ctl" {
		return ctl.Main(args[1:], stdout, stderr, ctl.Env{})
	}
	f, err := parseFlags(args, stdout, stderr)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case err != nil:
		return 2
	}
	switch {
	case f.version:
		fmt.Fprintf(stdout, "lbd %s %s %s\n", version, runtime.Version(), commit())
		return 0
	case f.check:
		return check(f.config, stdout, stderr)
	case f.healthcheck != "":
		return healthcheck(f.healthcheck, stdout, stderr)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	// Signals are caught from here on: a SIGHUP or SIGUSR1 while lbd
	// starts must not kill it (their default action); they and a SIGTERM
	// wait until it runs.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sig)
	var demo *demoBackends
	load := func() (*config.Config, error) {
		cfg, err := loadConfig(f)
		if err == nil && demo != nil {
			demo.apply(cfg)
		}
		return cfg, err
	}
	cfg, err := loadConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "lbd: %v\n", err)
		return 1
	}
	if f.demo {
		if demo, err = startDemo(log); err != nil {
			fmt.Fprintf(stderr, "lbd: demo backends: %v\n", err)
			return 1
		}
		defer demo.stop()
		demo.apply(cfg)
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Load: load, Logger: log, Version: version})
	if err != nil {
		fmt.Fprintf(stderr, "lbd: %v\n", err)
		return 1
	}
	if err := d.Start(); err != nil {
		fmt.Fprintf(stderr, "lbd: %v\n", err)
		_ = d.Shutdown(context.Background())
		return 1
	}
	if f.pidfile != "" {
		if err := writePidfile(f.pidfile); err != nil {
			fmt.Fprintf(stderr, "lbd: -pidfile: %v\n", err)
			_ = d.Shutdown(context.Background())
			return 1
		}
		defer removePidfile(f.pidfile, log)
	}
	if f.demo {
		fmt.Fprintf(stderr, "\nlbd demo: try  curl -si http://%s/api/   curl -si http://%s/   and  curl -s http://%s/admin/pools\n\n",
			hostPort(d.DataAddr()), hostPort(d.DataAddr()), d.AdminAddr())
	}
	s := untilStop(sig, d.Ready(), lifecycle(d, log, sdnotify.New(os.Getenv)))
	grace := d.Config().ShutdownGrace.D()
	log.Info("shutting down", "signal", s.String(), "grace", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		return 1
	}
	return 0
}

// loadConfig applies API.md's precedence: flags, then environment, then
// the config file, then defaults.
func loadConfig(f flags) (*config.Config, error) {
	path := f.config
	if path == "" {
		if _, err := os.Stat("config.json"); err == nil && !f.demo {
			path = "config.json"
		}
	}
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, err
		}
	}
	if p := os.Getenv("LB_PORT"); p != "" {
		host, _, _ := net.SplitHostPort(cfg.Listen)
		cfg.Listen = net.JoinHostPort(host, p)
	}
	if a := os.Getenv("LB_ADMIN_ADDR"); a != "" {
		cfg.Admin.Listen = a
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.admin != "" {
		cfg.Admin.Listen = f.admin
	}
	// Validate again: the environment and flags may have put in what the file could not.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("after applying flags and environment: %w", err)
	}
	return cfg, nil
}

// check is `lbd -check`: every problem of the file in one run (decoding
// and validation together), then, for a valid file, the files it names.
func check(path string, stdout, stderr io.Writer) int {
	if path == "" {
		fmt.Fprintln(stderr, "lbd -check: -config FILE is required")
		return 2
	}
	problems := config.Check(path)
	if len(problems) == 0 {
		if cfg, err := config.Load(path); err == nil {
			problems = daemon.CheckFiles(cfg, time.Now())
		}
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "%s: %s\n", path, p)
	}
	if len(problems) > 0 {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

func commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func hostPort(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
