package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lbd/lbd/daemon"
	"github.com/lbd/lbd/internal/sdnotify"
)

// hooks are what the running daemon does on each event of untilStop.
type hooks struct {
	ready  func() // the daemon is ready (once)
	reload func() // SIGHUP
	reopen func() // SIGUSR1
	stop   func() // the stop signal arrived
}

// untilStop runs the hooks for readiness, SIGHUP and SIGUSR1 and returns
// the first other signal. A signal that arrives while a hook runs is kept
// (the channel holds one) and handled after it.
func untilStop(sig <-chan os.Signal, ready <-chan struct{}, h hooks) os.Signal {
	for {
		select {
		case <-ready:
			ready = nil
			h.ready()
		case s := <-sig:
			switch s {
			case syscall.SIGHUP:
				h.reload()
			case syscall.SIGUSR1:
				h.reopen()
			default:
				h.stop()
				return s
			}
		}
	}
}

// lifecycle wires the daemon to the signals and to systemd: READY=1 once
// it is ready, RELOADING=1 ... READY=1 around each reload it made after
// that (a reload before it is ready stays silent: systemd still waits for
// the first READY=1), STOPPING=1 when it begins to stop.
func lifecycle(d *daemon.Daemon, log *slog.Logger, n *sdnotify.Notifier) hooks {
	ready := false
	notify := func(err error) {
		if err != nil {
			log.Warn("sd_notify failed", daemon.ErrAttr(err))
		}
	}
	status := func() string {
		return fmt.Sprintf("serving on %s, admin %s", d.DataAddr(), d.AdminAddr())
	}
	return hooks{
		ready: func() {
			ready = true
			notify(n.Ready(status()))
		},
		reload: func() {
			if ready {
				notify(n.Reloading())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := d.Reload(ctx, false)
			if err != nil {
				log.Error("config reload refused; keeping the running configuration", daemon.ErrAttr(err))
			}
			if ready {
				st := status()
				if err != nil {
					st = "reload refused, running the previous configuration: " + strings.Join(daemon.Problems(err), "; ")
				}
				notify(n.Ready(st))
			}
		},
		reopen: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.ReopenLogs(ctx); err != nil {
				log.Error("SIGUSR1: access log not reopened", daemon.ErrAttr(err))
			}
		},
		stop: func() { notify(n.Stopping()) },
	}
}

// writePidfile writes this process's id to path, replacing what was there
// (a stale file from a killed run), by a rename so a reader never sees a
// half-written one.
func writePidfile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}

// removePidfile removes path at exit if it still names this process (a
// second lbd started with the same file owns it now otherwise).
func removePidfile(path string, log *slog.Logger) {
	data, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		return
	}
	if err := os.Remove(path); err != nil {
		log.Warn("pid file not removed", "pidfile", path, "err", err.Error())
	}
}
