// Command lbd is the lbd load balancer daemon.
//
//	lbd [-config FILE] [-listen ADDR] [-admin ADDR]   run
//	lbd -demo                                         run with embedded demo backends in two pools
//	lbd -check -config FILE                           validate a config file
//	lbd -version                                      print version information
//	lbd ctl [-admin ADDR] [-o table|json] COMMAND     the admin API's command-line client
//
// This is the entry point only: flags, environment, signals and the
// -check and -demo modes. The daemon itself is package daemon, the client
// package ctl.
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
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	config, listen, admin string
	demo, check, version  bool
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("lbd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.config, "config", "", "config file (default: ./config.json if present, else built-in defaults)")
	fs.StringVar(&f.listen, "listen", "", "data-plane listen address (default :3030; env LB_PORT sets the port)")
	fs.StringVar(&f.admin, "admin", "", "admin listen address (default 127.0.0.1:3031; env LB_ADMIN_ADDR)")
	fs.BoolVar(&f.demo, "demo", false, "start embedded demo backends on loopback, in two pools, and balance over them")
	fs.BoolVar(&f.check, "check", false, "validate the config file and exit (1 on problems)")
	fs.BoolVar(&f.version, "version", false, "print version and exit")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lbd: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return f, errors.New("stray arguments")
	}
	return f, nil
}

const usage = `usage:
  lbd [-config FILE] [-listen ADDR] [-admin ADDR]   run the load balancer
  lbd -demo                                         run with embedded demo backends in two pools
  lbd -check -config FILE                           validate a config file
  lbd -version                                      print version information
  lbd ctl [-admin ADDR] [-o table|json] COMMAND     the admin API's client (lbd ctl -h lists its commands)

flags:
`

func run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && args[0] == "ctl":
		return ctl.Main(args[1:], stdout, stderr, ctl.Env{})
	case len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		_, _ = parseFlags([]string{"-h"}, stdout) // asked for: the usage is the answer, on stdout
		return 0
	}
	f, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	switch {
	case f.version:
		fmt.Fprintf(stdout, "lbd %s %s %s\n", version, runtime.Version(), commit())
		return 0
	case f.check:
		return check(f.config, stdout, stderr)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	// Signals are caught from here on: a SIGHUP while lbd starts must not
	// kill it (the default action); it and a SIGTERM wait until it runs.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
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
	if f.demo {
		fmt.Fprintf(stderr, "\nlbd demo: try  curl -si http://%s/api/   curl -si http://%s/   and  curl -s http://%s/admin/pools\n\n",
			hostPort(d.DataAddr()), hostPort(d.DataAddr()), d.AdminAddr())
	}
	s := untilStop(sig, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := d.Reload(ctx, false); err != nil {
			log.Error("config reload refused; keeping the running configuration", "err", err)
		}
	})
	grace := d.Config().ShutdownGrace.D()
	log.Info("shutting down", "signal", s.String(), "grace", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		return 1
	}
	return 0
}

// untilStop calls reload for each SIGHUP and returns the first other signal.
// A SIGHUP that arrives during a reload is kept (the channel holds one) and
// handled after it.
func untilStop(sig <-chan os.Signal, reload func()) os.Signal {
	for s := range sig {
		if s != syscall.SIGHUP {
			return s
		}
		reload()
	}
	return nil
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
