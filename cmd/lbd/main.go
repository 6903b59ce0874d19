// Command lbd is the lbd load balancer daemon.
//
//	lbd [-config FILE] [-listen ADDR] [-admin ADDR]   run
//	lbd -demo                                         run with three embedded demo backends
//	lbd -check -config FILE                           validate a config file
//	lbd -version                                      print version information
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
	"slices"
	"syscall"
	"time"

	"github.com/lbd/lbd/config"
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
	fs.StringVar(&f.config, "config", "", "config file (default: ./config.json if present, else built-in defaults)")
	fs.StringVar(&f.listen, "listen", "", "data-plane listen address (default :3030; env LB_PORT sets the port)")
	fs.StringVar(&f.admin, "admin", "", "admin listen address (default 127.0.0.1:3031; env LB_ADMIN_ADDR)")
	fs.BoolVar(&f.demo, "demo", false, "start three embedded demo backends on loopback and balance over them")
	fs.BoolVar(&f.check, "check", false, "validate the config file and exit (1 on problems)")
	fs.BoolVar(&f.version, "version", false, "print version and exit")
	return f, fs.Parse(args)
}

func run(args []string, stdout, stderr io.Writer) int {
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
	cfg, err := loadConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "lbd: %v\n", err)
		return 1
	}
	if f.demo {
		stop, err := startDemo(cfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "lbd: demo backends: %v\n", err)
			return 1
		}
		defer stop()
	}
	if err := checkAdminExposure(cfg); err != nil {
		fmt.Fprintf(stderr, "lbd: %v\n", err)
		return 1
	}
	app, err := NewApp(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "lbd: %v\n", err)
		return 1
	}
	if err := app.Start(); err != nil {
		fmt.Fprintf(stderr, "lbd: %v\n", err)
		_ = app.Shutdown(context.Background())
		return 1
	}
	if f.demo {
		fmt.Fprintf(stderr, "\nlbd demo: try  curl -si http://%s/   and  curl -s http://%s/admin/backends\n\n",
			hostPort(app.DataAddr()), app.AdminAddr())
	}
	s := untilStop(sig, func() { reloadFile(app, f, cfg, log) })
	log.Info("shutting down", "signal", s.String(), "grace", cfg.ShutdownGrace.D().String())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace.D())
	defer cancel()
	if err := app.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", "err", err)
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

// reloadFile handles one SIGHUP: load the file used at start, apply flags
// and environment, validate, then apply. On any error lbd keeps running the
// configuration it has and logs why.
func reloadFile(app *App, f flags, started *config.Config, log *slog.Logger) {
	next, err := loadConfig(f)
	if err != nil {
		app.countReload(err)
		log.Error("config reload refused; keeping the running configuration", "err", err)
		return
	}
	if f.demo { // the demo backends are not in any file
		next.Backends = slices.Clone(started.Backends)
	}
	if err := app.Reload(next); err != nil {
		log.Error("config reload failed", "err", err)
		return
	}
	log.Info("config reloaded", "backends", len(next.Backends), "policy", next.Policy)
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

// checkAdminExposure refuses an admin listener reachable from other hosts
// unless a bearer token protects it.
func checkAdminExposure(cfg *config.Config) error {
	host, _, _ := net.SplitHostPort(cfg.Admin.Listen)
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	if os.Getenv("LB_ADMIN_TOKEN") != "" || cfg.Admin.TokenFile != "" {
		return nil
	}
	return fmt.Errorf("admin listener %s is not loopback-only: set LB_ADMIN_TOKEN or admin.token_file, or listen on 127.0.0.1", cfg.Admin.Listen)
}

func check(path string, stdout, stderr io.Writer) int {
	if path == "" {
		fmt.Fprintln(stderr, "lbd -check: -config FILE is required")
		return 2
	}
	problems := config.Check(path)
	if len(problems) == 0 {
		if cfg, err := config.Load(path); err == nil {
			problems = checkFiles(cfg, time.Now()) // what the config names must exist and be usable
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
