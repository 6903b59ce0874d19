package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// usageGroups orders the flags of lbd -h by what an operator wants to do;
// every flag is in one group (TestUsageListsEveryFlag).
var usageGroups = []struct {
	title string
	flags []string
}{
	{"Run", []string{"config", "listen", "admin", "pidfile"}},
	{"Try it", []string{"demo"}},
	{"Check and inspect", []string{"check", "healthcheck", "version"}},
}

const usageHead = `lbd is an HTTP load balancer daemon.

Usage:
  lbd [-config FILE] [-listen ADDR] [-admin ADDR] [-pidfile FILE]
  lbd -demo
  lbd -check -config FILE
  lbd -healthcheck URL
  lbd -version | -h
  lbd ctl [-admin ADDR] [-o table|json] COMMAND   the admin API's client (lbd ctl -h lists its commands)
`

const usageTail = `
Signals:
  SIGHUP           reload the config file: kill -HUP "$(cat FILE)" with -pidfile, or systemctl reload lbd
  SIGUSR1          reopen access_log.file (after logrotate moved it)
  SIGTERM, SIGINT  stop accepting, let in-flight requests finish within shutdown_grace, exit 0

Environment:
  LB_PORT          data-plane port (replaces the port of "listen")
  LB_ADMIN_ADDR    admin listen address
  LB_ADMIN_TOKEN   admin bearer token (required when the admin address is not loopback)
  NOTIFY_SOCKET    set by systemd (Type=notify): READY=1 once the first health checks are done

Reference: docs/API.md (CLI, config, admin API, metrics); examples/ holds runnable configs.
`

// usage prints lbd -h: the synopsis, the flags by group, signals and environment.
func usage(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, g := range usageGroups {
		fmt.Fprintf(&b, "\n%s:\n", g.title)
		for _, name := range g.flags {
			f := fs.Lookup(name)
			arg, text := flag.UnquoteUsage(f)
			fmt.Fprintf(&b, "  %-16s %s\n", strings.TrimSpace("-"+name+" "+arg), text)
		}
	}
	fmt.Fprintf(&b, "  %-16s %s\n", "-h, -help", "print this help and exit 0")
	b.WriteString(usageTail)
	io.WriteString(w, b.String())
}
