// Package ctl is `lbd ctl`, the command-line client of lbd's admin API:
//
//	lbd ctl [-admin ADDR] [-o table|json] [-token-file F] COMMAND [ARGS]
//
// It is a tool, not an actor: each command is one or a few HTTP calls to a
// running lbd's admin listener (-admin, default LB_ADMIN_ADDR or
// 127.0.0.1:3031), with the bearer token from -token-file or
// LB_ADMIN_TOKEN. It prints human tables by default (aligned, with each
// backend's state and its cause) or the API's JSON with -o json; the admin
// API's error goes to stderr and the exit status is 1; a usage mistake
// (unknown command, bad flag, missing argument) exits 2 with the usage.
//
// cmd/lbd calls Main when its first argument is "ctl".
package ctl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1 // the call failed: the admin API refused it, or lbd was not reachable
	ExitUsage = 2
)

// DefaultAdmin is the admin listener's default address (API.md).
const DefaultAdmin = "127.0.0.1:3031"

// Env are the environment variables ctl reads; nil Getenv uses os.Getenv.
type Env struct {
	Getenv func(string) string
	// Client makes the calls (default: a client with a 10s timeout for
	// calls; streams have none).
	Client *http.Client
}

// errUsage is a usage mistake: exit 2 with the usage.
var errUsage = errors.New("usage")

// usageError is errUsage with what was wrong.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// Usage is the text `lbd ctl -h` prints.
const Usage = `usage: lbd ctl [-admin ADDR] [-o table|json] [-token-file FILE] COMMAND [ARGS]

Talks to a running lbd's admin API (-admin, default $LB_ADMIN_ADDR or 127.0.0.1:3031;
the bearer token from -token-file or $LB_ADMIN_TOKEN). Pool-scoped commands take -pool NAME
(default "default").

commands:
  backends [-pool P]                      the pool's backends, their state and why
  pools                                   every pool: policy, backends, eligible, routes
  drain URL [-pool P]                     stop sending new requests to a backend
  undrain URL [-pool P]                   return a drained backend to service
  add URL [-weight N] [-name N] [-pool P] add a backend
  remove URL [-pool P]                    drain a backend, then remove it
  cap URL N [-pool P]                     cap a backend's requests in flight (0: no cap)
  policy [NAME] [-pool P]                 show or set the policy (rr, wrr, lc, p2c-ewma)
  canary [URL PERCENT | clear] [-pool P]  show, set or clear the canary
  reload [-dry-run]                       read the config file again and apply it (or only plan it)
  events [-follow] [-pool P] [-backend B] [-limit N]
                                          backend transitions and their causes
  tap [-pool P] [-backend B] [-status 5xx|4xx|2xx|CODE] [-limit N]
                                          each proxied request: where it went and why
  fleet                                   this replica and the others in its fleet
`

// Main runs `lbd ctl` with args (after "ctl") and returns the exit status.
func Main(args []string, stdout, stderr io.Writer, env Env) int {
	c := &client{out: stdout, errw: stderr, env: env}
	if c.env.Getenv == nil {
		c.env.Getenv = os.Getenv
	}
	err := c.run(args)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, Usage)
		return ExitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "lbd ctl: %s\n\n%s", strings.TrimPrefix(err.Error(), errUsage.Error()+": "), Usage)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "lbd ctl: %v\n", err)
	return ExitError
}

// globals are the flags every command takes.
type globals struct {
	admin, output, tokenFile string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.admin, "admin", g.admin, "admin API address (default $LB_ADMIN_ADDR or "+DefaultAdmin+")")
	fs.StringVar(&g.output, "o", g.output, "output: table or json")
	fs.StringVar(&g.tokenFile, "token-file", g.tokenFile, "file holding the admin bearer token (default $LB_ADMIN_TOKEN)")
}

// newFlags returns a command's flag set, quiet: errors come back to Main.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args into fs, flags before, between and after the
// positional arguments (`drain URL -pool api`), and returns those.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError("%s: %v", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (c *client) run(args []string) error {
	g := &globals{output: "table"}
	fs := newFlags("lbd ctl")
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError("%v", err)
	}
	if fs.NArg() == 0 {
		return usageError("no command given")
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	cmd, ok := commands[name]
	if !ok {
		if name == "help" {
			return flag.ErrHelp
		}
		return usageError("unknown command %q", name)
	}
	cfs := newFlags(name)
	g.register(cfs)
	opts := cmd.flags(cfs)
	pos, err := parse(cfs, rest)
	if err != nil {
		return err
	}
	if !slices.Contains([]string{"table", "json"}, g.output) {
		return usageError("-o: want table or json, got %q", g.output)
	}
	if err := c.setup(g); err != nil {
		return err
	}
	return cmd.run(c, opts, pos)
}

// setup resolves the address and the token.
func (c *client) setup(g *globals) error {
	addr := g.admin
	if addr == "" {
		addr = c.env.Getenv("LB_ADMIN_ADDR")
	}
	if addr == "" {
		addr = DefaultAdmin
	}
	if !strings.Contains(addr, "://") {
		if strings.HasPrefix(addr, ":") { // a listen address with no host: lbd's own machine
			addr = "127.0.0.1" + addr
		}
		addr = "http://" + addr
	}
	c.base = strings.TrimRight(addr, "/")
	c.json = g.output == "json"
	c.token = c.env.Getenv("LB_ADMIN_TOKEN")
	if g.tokenFile != "" {
		b, err := os.ReadFile(g.tokenFile)
		if err != nil {
			return fmt.Errorf("-token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
		if c.token == "" {
			return fmt.Errorf("-token-file: %s is empty", g.tokenFile)
		}
	}
	if c.env.Client == nil {
		c.env.Client = &http.Client{}
	}
	return nil
}

// callTimeout bounds one call that is not a stream.
const callTimeout = 30 * time.Second
