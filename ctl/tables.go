package ctl

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/events"
	"github.com/lbd/lbd/proxy"
)

// The admin API's answers, as far as the tables show them.
type (
	backendRow struct {
		Pool   string `json:"pool"`
		Name   string `json:"name"`
		Source string `json:"source"`
		backendactor.Stats
	}
	poolRow struct {
		Name   string `json:"name"`
		Policy string `json:"policy"`
		Sticky struct {
			Enabled bool   `json:"enabled"`
			Key     string `json:"key"`
		} `json:"sticky"`
		Canary struct {
			Backend string  `json:"backend"`
			Percent float64 `json:"percent"`
		} `json:"canary"`
		Backends    int   `json:"backends"`
		Eligible    int   `json:"eligible"`
		Inflight    int64 `json:"inflight"`
		MaxInflight int   `json:"max_inflight"`
		Routes      []struct {
			Name string `json:"name"`
		} `json:"routes"`
	}
	policyDoc struct {
		Pool   string `json:"pool"`
		Policy string `json:"policy"`
		Sticky struct {
			Enabled *bool  `json:"enabled"`
			Key     string `json:"key"`
		} `json:"sticky"`
	}
	canaryDoc struct {
		Pool    string  `json:"pool"`
		Backend string  `json:"backend"`
		Percent float64 `json:"percent"`
	}
	reloadPlan struct {
		DryRun   bool `json:"dry_run"`
		Settings []struct {
			Path string `json:"path"`
		} `json:"settings"`
		Routing struct {
			PoolsAdded   []string `json:"pools_added"`
			PoolsRemoved []string `json:"pools_removed"`
			Backends     []struct {
				Pool   string `json:"pool"`
				URL    string `json:"url"`
				Action string `json:"action"`
			} `json:"backends"`
			Kept int `json:"backends_kept"`
		} `json:"routing"`
	}
	fleetDoc struct {
		Enabled *bool `json:"enabled"` // false: no fleet section, lbd runs alone
		Self    struct {
			Name        string     `json:"name"`
			Connected   bool       `json:"connected"`
			Synced      bool       `json:"synced"`
			Revision    int64      `json:"revision"`
			Changes     int64      `json:"changes_applied"`
			Resyncs     int64      `json:"resyncs"`
			LastError   string     `json:"last_error"`
			LastErrorAt *time.Time `json:"last_error_at"`
		} `json:"self"`
		Etcd struct {
			Endpoints []string `json:"endpoints"`
			Prefix    string   `json:"prefix"`
		} `json:"etcd"`
		Replicas []struct {
			Name         string    `json:"name"`
			AdminAddress string    `json:"admin_address"`
			StartedAt    time.Time `json:"started_at"`
			Version      string    `json:"version"`
		} `json:"replicas"`
	}
)

func (c *client) table() *tabwriter.Writer { return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// cause is why a backend is where it is: its state's cause and, while its
// breaker is not closed, the breaker's.
func (r backendRow) cause() string {
	var parts []string
	if r.StateCause != "" {
		parts = append(parts, r.StateCause)
	}
	if r.Breaker != backendactor.Closed && r.BreakerCause != "" {
		parts = append(parts, r.BreakerCause)
	}
	return or(strings.Join(parts, "; "), "-")
}

func (c *client) backendTable(rows []backendRow) error {
	w := c.table()
	fmt.Fprintln(w, "POOL\tBACKEND\tNAME\tSTATE\tBREAKER\tINFLIGHT\tEWMA\tREQUESTS\tFAILURES\tWEIGHT\tWHY")
	for _, r := range rows {
		inflight := fmt.Sprint(r.Inflight)
		if r.MaxInflight > 0 {
			inflight += fmt.Sprintf("/%d", r.MaxInflight)
		}
		state := r.State
		if r.State == backendactor.StateWarming {
			state += fmt.Sprintf(" %.0f%%", 100*r.WarmFactor)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%.1fms\t%d\t%d\t%d\t%s\n", r.Pool, r.URL, or(r.Name, "-"), state,
			r.Breaker, inflight, r.EWMAMillis, r.Requests, r.Failures, r.Weight, r.cause())
	}
	return w.Flush()
}

func (c *client) poolTable(rows []poolRow) error {
	w := c.table()
	fmt.Fprintln(w, "POOL\tPOLICY\tSTICKY\tCANARY\tBACKENDS\tELIGIBLE\tINFLIGHT\tROUTES")
	for _, p := range rows {
		sticky := "off"
		if p.Sticky.Enabled {
			sticky = p.Sticky.Key
		}
		canary := "-"
		if p.Canary.Backend != "" {
			canary = fmt.Sprintf("%s %g%%", p.Canary.Backend, p.Canary.Percent)
		}
		inflight := fmt.Sprint(p.Inflight)
		if p.MaxInflight > 0 {
			inflight += fmt.Sprintf("/%d", p.MaxInflight)
		}
		var routes []string
		for _, r := range p.Routes {
			routes = append(routes, r.Name)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", p.Name, p.Policy, sticky, canary, p.Backends, p.Eligible,
			inflight, or(strings.Join(routes, ","), "-"))
	}
	return w.Flush()
}

func (c *client) printPolicy(p policyDoc) error {
	sticky := "off"
	if p.Sticky.Enabled != nil && *p.Sticky.Enabled {
		sticky = "on, key " + p.Sticky.Key
	}
	_, err := fmt.Fprintf(c.out, "pool %s: policy %s, sticky %s\n", or(p.Pool, "default"), p.Policy, sticky)
	return err
}

func (c *client) printCanary(cd canaryDoc) error {
	if cd.Backend == "" {
		_, err := fmt.Fprintf(c.out, "pool %s: no canary\n", or(cd.Pool, "default"))
		return err
	}
	_, err := fmt.Fprintf(c.out, "pool %s: canary %s takes %g%% of requests\n", or(cd.Pool, "default"), cd.Backend, cd.Percent)
	return err
}

func (c *client) printPlan(p reloadPlan) error {
	verb := "reloaded"
	if p.DryRun {
		verb = "dry run, nothing applied"
	}
	var settings []string
	for _, s := range p.Settings {
		settings = append(settings, s.Path)
	}
	r := p.Routing
	fmt.Fprintf(c.out, "%s: %d setting(s) changed", verb, len(settings))
	if len(settings) > 0 {
		fmt.Fprintf(c.out, " (%s)", strings.Join(settings, ", "))
	}
	fmt.Fprintf(c.out, ", %d backend(s) changed, %d kept\n", len(r.Backends), r.Kept)
	w := c.table()
	for _, name := range r.PoolsAdded {
		fmt.Fprintf(w, "  pool\t%s\tadded\n", name)
	}
	for _, name := range r.PoolsRemoved {
		fmt.Fprintf(w, "  pool\t%s\tremoved\n", name)
	}
	for _, b := range r.Backends {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", b.Pool, b.URL, b.Action)
	}
	return w.Flush()
}

func (c *client) eventTable(es []events.Event) error {
	w := c.table()
	fmt.Fprintln(w, "TIME\tPOOL\tBACKEND\tNAME\tKIND\tFROM\tTO\tCAUSE")
	for _, e := range es {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Pool, e.Backend,
			or(e.Name, "-"), e.Kind, or(e.From, "(new)"), e.To, e.Cause)
	}
	return w.Flush()
}

// eventLine is one event of `events -follow`, printed as it comes.
func eventLine(e events.Event) string {
	b := e.Backend
	if e.Name != "" {
		b += " (" + e.Name + ")"
	}
	return fmt.Sprintf("%s  %s  %s  %s %s -> %s: %s", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Pool, b,
		e.Kind, or(e.From, "(new)"), e.To, e.Cause)
}

// tapLines is one request of `tap`: where it went, then why, one line per
// backend of the pool.
func tapLines(e proxy.TapEvent) string {
	var sb strings.Builder
	to := or(e.Backend, "-")
	if e.Name != "" {
		to += " (" + e.Name + ")"
	}
	fmt.Fprintf(&sb, "%s %s %s%s -> %s %d %.1fms pool=%s policy=%s", e.Time.Local().Format("15:04:05.000"), e.Method, e.Host,
		e.Path, to, e.Status, e.LatencyMs, or(e.Pool, "-"), or(e.Policy, "-"))
	if e.By != "" && e.By != "policy" {
		fmt.Fprintf(&sb, " by=%s", e.By)
	}
	if e.Reject != "" {
		fmt.Fprintf(&sb, " reject=%s", e.Reject)
	}
	fmt.Fprintf(&sb, " id=%s\n", e.ReqID)
	for _, a := range e.Attempts[:max(len(e.Attempts)-1, 0)] { // the tries before the last, which failed
		fmt.Fprintf(&sb, "    tried %s: %d %s %.1fms\n", a.Backend, a.Status, a.Error, a.LatencyMs)
	}
	for _, c := range e.Candidates {
		mark := " "
		switch {
		case c.Chosen:
			mark = "*"
		case c.Sampled:
			mark = "+"
		}
		why := "eligible"
		if !c.Eligible {
			why = c.Reason
		}
		name := ""
		if c.Name != "" {
			name = " (" + c.Name + ")"
		}
		fmt.Fprintf(&sb, "  %s %s%s %s ewma=%.1fms inflight=%d weight=%d", mark, c.Backend, name, why, c.EWMAMs, c.Inflight, c.Weight)
		if c.Cost != 0 {
			fmt.Fprintf(&sb, " cost=%.4g", c.Cost)
		}
		if c.WarmFactor < 1 {
			fmt.Fprintf(&sb, " warm=%.0f%%", 100*c.WarmFactor)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

func (c *client) printFleet(f fleetDoc) error {
	if f.Enabled != nil && !*f.Enabled {
		_, err := fmt.Fprintln(c.out, "fleet mode is off: this lbd runs alone (no fleet section in its config)")
		return err
	}
	s := f.Self
	state := "disconnected"
	switch {
	case s.Connected && s.Synced:
		state = "connected, synced"
	case s.Connected:
		state = "connected, not synced yet"
	}
	fmt.Fprintf(c.out, "replica %s: %s at revision %d (%d changes applied, %d resyncs)\n", s.Name, state, s.Revision, s.Changes, s.Resyncs)
	fmt.Fprintf(c.out, "etcd %s prefix %s\n", strings.Join(f.Etcd.Endpoints, ","), f.Etcd.Prefix)
	if s.LastError != "" {
		at := ""
		if s.LastErrorAt != nil {
			at = " at " + s.LastErrorAt.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(c.out, "last error%s: %s\n", at, s.LastError)
	}
	w := c.table()
	fmt.Fprintln(w, "REPLICA\tADMIN\tSTARTED\tVERSION")
	for _, r := range f.Replicas {
		self := ""
		if r.Name == s.Name {
			self = " (this one)"
		}
		fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\n", r.Name, self, r.AdminAddress, r.StartedAt.Local().Format(time.RFC3339), r.Version)
	}
	return w.Flush()
}
