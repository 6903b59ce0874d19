package main

import (
	"fmt"
	"strings"

	"github.com/lbd/lbd/config"
)

// The config file and the admin API both change the routing settings (the
// backend set with weights and caps, the policy, sticky and canary). lbd
// settles them as a three-way merge does: what the file changed since it was
// last applied wins; what the file left alone keeps any admin change. diffFile
// computes what the file changed; Reload applies that through the actors
// (reload.go), and a restart applies it to the restored state file (state.go),
// so a file edited while lbd was down is not ignored because a state file exists.

// routing is the part of a config that both the file and the admin API set.
// The state file keeps the file's routing as last applied (savedState.File).
type routing struct {
	Backends []config.Backend `json:"backends"`
	Policy   string           `json:"policy"`
	Sticky   config.Sticky    `json:"sticky"`
	Canary   config.Canary    `json:"canary"`
}

// routingOf returns cfg's routing with URLs normalised, so that two spellings
// of one backend compare equal.
func routingOf(cfg *config.Config) routing {
	r := routing{Policy: cfg.Policy, Sticky: cfg.Sticky, Canary: canaryOf(cfg.Canary)}
	for _, b := range cfg.Backends {
		if u, err := config.NormalizeURL(b.URL); err == nil {
			b.URL = u
		}
		if b.Protocol == "" {
			b.Protocol = "http1"
		}
		r.Backends = append(r.Backends, b)
	}
	return r
}

// canaryOf normalises a canary: no share means no canary.
func canaryOf(c config.Canary) config.Canary {
	if c.Backend == "" || c.Percent <= 0 {
		return config.Canary{}
	}
	if u, err := config.NormalizeURL(c.Backend); err == nil {
		c.Backend = u
	}
	return c
}

// backendChange is a backend the file lists before and after, with settings changed.
type backendChange struct {
	Old, New config.Backend // URLs normalised
}

func (c backendChange) weight() bool { return c.Old.Weight != c.New.Weight }
func (c backendChange) cap() bool    { return c.Old.MaxInflight != c.New.MaxInflight }

// transport reports changes that only a new backend actor (remove, then add) applies.
func (c backendChange) transport() bool {
	return c.Old.Protocol != c.New.Protocol || c.Old.CAFile != c.New.CAFile || c.Old.ServerName != c.New.ServerName
}

// fileDiff is what the file changed between two versions of its routing.
type fileDiff struct {
	Removed []string         // normalised URLs the file no longer lists
	Added   []config.Backend // backends new in the file, in file order
	Changed []backendChange  // backends in both whose settings differ, in file order
	// Policy is set when the policy or sticky settings changed; Canary when the canary did.
	Policy *routing
	Canary *config.Canary
}

// diffFile compares the file's routing as last applied (prev) with the new one (next).
func diffFile(prev, next routing) fileDiff {
	var d fileDiff
	old, cur := indexBackends(prev.Backends), indexBackends(next.Backends)
	for _, b := range prev.Backends {
		if _, ok := cur[b.URL]; !ok {
			d.Removed = append(d.Removed, b.URL)
		}
	}
	for _, b := range next.Backends {
		ob, ok := old[b.URL]
		switch {
		case !ok:
			d.Added = append(d.Added, b)
		case ob != b:
			d.Changed = append(d.Changed, backendChange{Old: ob, New: b})
		}
	}
	if prev.Policy != next.Policy || prev.Sticky != next.Sticky {
		d.Policy = &routing{Policy: next.Policy, Sticky: next.Sticky}
	}
	if prev.Canary != next.Canary {
		c := next.Canary
		d.Canary = &c
	}
	return d
}

func indexBackends(bs []config.Backend) map[string]config.Backend {
	m := make(map[string]config.Backend, len(bs))
	for _, b := range bs {
		m[b.URL] = b
	}
	return m
}

// empty reports a file that changed nothing of the routing.
func (d fileDiff) empty() bool {
	return len(d.Removed)+len(d.Added)+len(d.Changed) == 0 && d.Policy == nil && d.Canary == nil
}

// String summarises the diff for a log line.
func (d fileDiff) String() string {
	var parts []string
	for _, b := range d.Added {
		parts = append(parts, "+"+b.URL)
	}
	for _, u := range d.Removed {
		parts = append(parts, "-"+u)
	}
	for _, c := range d.Changed {
		parts = append(parts, "~"+c.New.URL)
	}
	if d.Policy != nil {
		parts = append(parts, fmt.Sprintf("policy=%s sticky=%v/%s", d.Policy.Policy, d.Policy.Sticky.Enabled, d.Policy.Sticky.Key))
	}
	if d.Canary != nil {
		parts = append(parts, fmt.Sprintf("canary=%s/%g", d.Canary.Backend, d.Canary.Percent))
	}
	if len(parts) == 0 {
		return "no routing change"
	}
	return strings.Join(parts, " ")
}
