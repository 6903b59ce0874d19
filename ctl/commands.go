package ctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/lbd/lbd/events"
	"github.com/lbd/lbd/proxy"
)

// command is one `lbd ctl` command: its flags, its number of positional
// arguments, and what it does.
type command struct {
	flags func(*flag.FlagSet) *opts
	run   func(c *client, o *opts, args []string) error
}

// opts are every command's own flags; each command registers those it takes.
type opts struct {
	pool, name, backend, status string
	weight, limit               int
	follow, dryRun              bool
}

func withPool(fs *flag.FlagSet, o *opts) *opts {
	fs.StringVar(&o.pool, "pool", "", `the pool (default "default")`)
	return o
}

func poolFlag(fs *flag.FlagSet) *opts { return withPool(fs, &opts{}) }
func noFlags(*flag.FlagSet) *opts     { return &opts{} }

// query is the pool parameter plus pairs of more.
func (o *opts) query(kv ...string) url.Values {
	q := url.Values{}
	if o.pool != "" {
		q.Set("pool", o.pool)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// want checks the number of positional arguments.
func want(name string, args []string, lo, hi int, what string) error {
	if len(args) < lo || len(args) > hi {
		return usageError("%s: want %s, got %d argument(s)", name, what, len(args))
	}
	return nil
}

var commands = map[string]command{
	"backends": {poolFlag, func(c *client, o *opts, args []string) error {
		if err := want("backends", args, 0, 0, "no arguments"); err != nil {
			return err
		}
		var doc struct{ Backends []backendRow }
		if err := c.callInto(http.MethodGet, "/admin/backends", o.query(), &doc); err != nil || c.json {
			return err
		}
		return c.backendTable(doc.Backends)
	}},
	"pools": {noFlags, func(c *client, o *opts, args []string) error {
		if err := want("pools", args, 0, 0, "no arguments"); err != nil {
			return err
		}
		var doc struct{ Pools []poolRow }
		if err := c.callInto(http.MethodGet, "/admin/pools", nil, &doc); err != nil || c.json {
			return err
		}
		return c.poolTable(doc.Pools)
	}},
	"drain":   backendChange("drain", "/admin/drain"),
	"undrain": backendChange("undrain", "/admin/undrain"),
	"add": {func(fs *flag.FlagSet) *opts {
		o := poolFlag(fs)
		fs.IntVar(&o.weight, "weight", 1, "the backend's weight (1..1000)")
		fs.StringVar(&o.name, "name", "", "a name shown next to its URL")
		return o
	}, func(c *client, o *opts, args []string) error {
		if err := want("add", args, 1, 1, "URL"); err != nil {
			return err
		}
		q := o.query("url", args[0], "weight", strconv.Itoa(o.weight))
		if o.name != "" {
			q.Set("name", o.name)
		}
		return c.backendCall("/admin/backend/add", q)
	}},
	"remove": {poolFlag, func(c *client, o *opts, args []string) error {
		if err := want("remove", args, 1, 1, "URL"); err != nil {
			return err
		}
		var doc struct {
			Removed, Pool string
		}
		if err := c.callInto(http.MethodPost, "/admin/backend/remove", o.query("url", args[0]), &doc); err != nil || c.json {
			return err
		}
		_, err := fmt.Fprintf(c.out, "removed %s from pool %s: it drains, then stops\n", doc.Removed, doc.Pool)
		return err
	}},
	"cap": {poolFlag, func(c *client, o *opts, args []string) error {
		if err := want("cap", args, 2, 2, "URL N"); err != nil {
			return err
		}
		if _, err := strconv.Atoi(args[1]); err != nil {
			return usageError("cap: N must be a whole number (0: no cap), got %q", args[1])
		}
		return c.backendCall("/admin/backend/cap", o.query("url", args[0], "max_inflight", args[1]))
	}},
	"policy": {poolFlag, func(c *client, o *opts, args []string) error {
		if err := want("policy", args, 0, 1, "at most a policy name"); err != nil {
			return err
		}
		method, q := http.MethodGet, o.query()
		if len(args) == 1 {
			method = http.MethodPost
			q.Set("name", args[0])
		}
		var p policyDoc
		if err := c.callInto(method, "/admin/policy", q, &p); err != nil || c.json {
			return err
		}
		return c.printPolicy(p)
	}},
	"canary": {poolFlag, func(c *client, o *opts, args []string) error {
		var method, path string
		q := o.query()
		switch {
		case len(args) == 0:
			method, path = http.MethodGet, "/admin/canary"
		case len(args) == 1 && args[0] == "clear":
			method, path = http.MethodPost, "/admin/canary/clear"
		case len(args) == 2:
			method, path = http.MethodPost, "/admin/canary/set"
			q.Set("url", args[0])
			q.Set("percent", args[1])
		default:
			return usageError("canary: want URL PERCENT, clear, or nothing to show it")
		}
		var cd canaryDoc
		if err := c.callInto(method, path, q, &cd); err != nil || c.json {
			return err
		}
		return c.printCanary(cd)
	}},
	"reload": {func(fs *flag.FlagSet) *opts {
		o := &opts{}
		fs.BoolVar(&o.dryRun, "dry-run", false, "only show what a reload would change")
		return o
	}, func(c *client, o *opts, args []string) error {
		if err := want("reload", args, 0, 0, "no arguments"); err != nil {
			return err
		}
		q := url.Values{}
		if o.dryRun {
			q.Set("dry_run", "1")
		}
		var plan reloadPlan
		if err := c.callInto(http.MethodPost, "/admin/reload", q, &plan); err != nil || c.json {
			return err
		}
		return c.printPlan(plan)
	}},
	"events": {func(fs *flag.FlagSet) *opts {
		o := poolFlag(fs)
		fs.BoolVar(&o.follow, "follow", false, "keep printing new events as they happen")
		fs.StringVar(&o.backend, "backend", "", "only this backend (URL or name)")
		fs.IntVar(&o.limit, "limit", 0, "at most the last N (default: all kept; with -follow, 100)")
		return o
	}, func(c *client, o *opts, args []string) error {
		if err := want("events", args, 0, 0, "no arguments"); err != nil {
			return err
		}
		q := o.query()
		if o.backend != "" {
			q.Set("backend", o.backend)
		}
		if o.limit > 0 {
			q.Set("limit", strconv.Itoa(o.limit))
		}
		if !o.follow {
			var doc struct{ Events []events.Event }
			if err := c.callInto(http.MethodGet, "/admin/events", q, &doc); err != nil || c.json {
				return err
			}
			return c.eventTable(doc.Events)
		}
		q.Set("follow", "1")
		return c.stream("/admin/events", q, func(b []byte) (bool, error) {
			if c.json {
				_, err := fmt.Fprintf(c.out, "%s\n", b)
				return true, err
			}
			var e events.Event
			if err := json.Unmarshal(b, &e); err != nil {
				return false, fmt.Errorf("events: %w", err)
			}
			_, err := fmt.Fprintln(c.out, eventLine(e))
			return true, err
		})
	}},
	"tap": {func(fs *flag.FlagSet) *opts {
		o := poolFlag(fs)
		fs.StringVar(&o.backend, "backend", "", "only requests sent to this backend (URL or name)")
		fs.StringVar(&o.status, "status", "", "only these statuses: 5xx, 4xx, 2xx or a code")
		fs.IntVar(&o.limit, "limit", 0, "stop after N requests")
		return o
	}, func(c *client, o *opts, args []string) error {
		if err := want("tap", args, 0, 0, "no arguments (filters are flags)"); err != nil {
			return err
		}
		q := o.query()
		if o.backend != "" {
			q.Set("backend", o.backend)
		}
		if o.status != "" {
			q.Set("status", o.status)
		}
		if o.limit > 0 {
			q.Set("limit", strconv.Itoa(o.limit))
		}
		return c.stream("/admin/tap", q, func(b []byte) (bool, error) {
			if c.json {
				_, err := fmt.Fprintf(c.out, "%s\n", b)
				return true, err
			}
			var e proxy.TapEvent
			if err := json.Unmarshal(b, &e); err != nil {
				return false, fmt.Errorf("tap: %w", err)
			}
			_, err := fmt.Fprint(c.out, tapLines(e))
			return true, err
		})
	}},
	"fleet": {noFlags, func(c *client, o *opts, args []string) error {
		if err := want("fleet", args, 0, 0, "no arguments"); err != nil {
			return err
		}
		var f fleetDoc
		if err := c.callInto(http.MethodGet, "/admin/fleet", nil, &f); err != nil || c.json {
			return err
		}
		return c.printFleet(f)
	}},
}

// backendChange is a command that names one backend and answers its row.
func backendChange(name, path string) command {
	return command{poolFlag, func(c *client, o *opts, args []string) error {
		if err := want(name, args, 1, 1, "URL"); err != nil {
			return err
		}
		return c.backendCall(path, o.query("url", args[0]))
	}}
}

// backendCall makes a POST that answers with the backend's row.
func (c *client) backendCall(path string, q url.Values) error {
	var row backendRow
	if err := c.callInto(http.MethodPost, path, q, &row); err != nil || c.json {
		return err
	}
	return c.backendTable([]backendRow{row})
}
