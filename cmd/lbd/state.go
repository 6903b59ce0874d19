package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// The state file keeps what the admin API changed across restarts: the
// backend set with weights, caps and drains, the policy and the canary. It
// is rewritten after every successful admin change and reload by the state
// writer actor (statewriter.go), the file's only writer, and restored at
// start on top of the config file: the state wins, except where the config
// file changed since the state was written (it records the file's routing
// as last applied), the same rule as a SIGHUP reload (filediff.go).

// stateVersion is the format's version; a file of another version is set aside.
const stateVersion = 1

// savedState is the state file's JSON.
type savedState struct {
	Version  int            `json:"version"`
	Backends []savedBackend `json:"backends"`
	Policy   string         `json:"policy"`
	Sticky   config.Sticky  `json:"sticky"`
	Canary   config.Canary  `json:"canary"`
	// File is the config file's routing as last applied when the state was
	// written; absent in a state written without it, which then wins whole.
	File *routing `json:"file,omitempty"`
}

type savedBackend struct {
	URL         string `json:"url"`
	Weight      int    `json:"weight"`
	MaxInflight int    `json:"max_inflight"`
	Draining    bool   `json:"draining"`
	Protocol    string `json:"protocol,omitempty"`
}

// restored is what NewApp applies from a state file.
type restored struct {
	cfg     *config.Config // the config with the state on top
	drained []string       // normalised URLs to drain once added
	// fileChanges is what the config file changed since the state was
	// written, applied over the state.
	fileChanges fileDiff
}

// restoreState reads path and lays it over cfg. A missing file restores
// nothing. A file that cannot be read, parsed or validated is renamed to
// <path>.corrupt-<unix seconds> so the operator can inspect it, and the
// config file alone applies; the returned error says what happened.
func restoreState(path string, cfg *config.Config, now time.Time) (*restored, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state_file %s: %w", path, err)
	}
	r, perr := parseState(data, cfg)
	if perr == nil {
		return r, nil
	}
	aside := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
	if err := os.Rename(path, aside); err != nil {
		return nil, fmt.Errorf("state_file %s is unusable (%v) and could not be set aside: %w", path, perr, err)
	}
	return nil, fmt.Errorf("state_file %s is unusable, moved to %s; starting from the config file alone: %w", path, aside, perr)
}

func parseState(data []byte, cfg *config.Config) (*restored, error) {
	var st savedState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("version %d, want %d", st.Version, stateVersion)
	}
	var d fileDiff
	if st.File != nil {
		d = diffFile(*st.File, routingOf(cfg))
		st = rebase(st, d)
	}
	out, drained := overlay(cfg, st)
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("invalid: %w", err)
	}
	return &restored{cfg: out, drained: drained, fileChanges: d}, nil
}

// rebase applies the config file's changes d to the saved state, as Reload
// applies them to the running actors: backends the file removed go, the
// ones it added come (one the admin API had added already takes the file's
// settings), changed weights, caps and protocols take the file's value, and
// so do a changed policy, sticky or canary. A backend the admin API removed
// stays removed even if the file changed it. A canary whose backend is gone
// is cleared, as the scheduler clears it when its backend is removed.
func rebase(st savedState, d fileDiff) savedState {
	gone := make(map[string]bool, len(d.Removed))
	for _, u := range d.Removed {
		gone[u] = true
	}
	bs := make([]savedBackend, 0, len(st.Backends)+len(d.Added))
	at := make(map[string]int, len(st.Backends))
	for _, b := range st.Backends {
		u, err := config.NormalizeURL(b.URL)
		if err != nil || gone[u] {
			continue
		}
		at[u] = len(bs)
		bs = append(bs, b)
	}
	set := func(nb config.Backend, weight, capN, protocol bool) {
		i, ok := at[nb.URL]
		if !ok {
			return
		}
		if weight {
			bs[i].Weight = nb.Weight
		}
		if capN {
			bs[i].MaxInflight = nb.MaxInflight
		}
		if protocol {
			bs[i].Protocol = nb.Protocol
		}
	}
	for _, nb := range d.Added {
		if _, ok := at[nb.URL]; !ok {
			at[nb.URL] = len(bs)
			bs = append(bs, savedBackend{URL: nb.URL})
		}
		set(nb, true, true, true)
	}
	for _, c := range d.Changed {
		set(c.New, c.weight(), c.cap(), c.Old.Protocol != c.New.Protocol)
	}
	st.Backends = bs
	if d.Policy != nil {
		st.Policy, st.Sticky = d.Policy.Policy, d.Policy.Sticky
	}
	if d.Canary != nil {
		st.Canary = *d.Canary
	}
	if c := canaryOf(st.Canary); c.Backend != "" {
		if _, ok := at[c.Backend]; !ok {
			st.Canary = config.Canary{}
		}
	}
	return st
}

// overlay returns a copy of cfg with st's backends, policy, sticky and canary,
// and the normalised URLs of the drained backends.
func overlay(cfg *config.Config, st savedState) (*config.Config, []string) {
	out := cfg.Clone()
	out.Policy, out.Sticky, out.Canary = st.Policy, st.Sticky, st.Canary
	out.Backends = nil
	var drained []string
	for _, b := range st.Backends {
		nb := config.Backend{URL: b.URL, Weight: b.Weight, MaxInflight: b.MaxInflight, Protocol: b.Protocol}
		for _, cb := range cfg.Backends { // TLS details live only in the config file
			if same(cb.URL, b.URL) {
				nb.CAFile, nb.ServerName = cb.CAFile, cb.ServerName
				if nb.Protocol == "" {
					nb.Protocol = cb.Protocol
				}
			}
		}
		if nb.Protocol == "" {
			nb.Protocol = "http1"
		}
		out.Backends = append(out.Backends, nb)
		if b.Draining {
			u, _ := config.NormalizeURL(b.URL)
			drained = append(drained, u)
		}
	}
	return out, drained
}

// same reports whether two backend URLs name the same backend.
func same(a, b string) bool {
	na, err1 := config.NormalizeURL(a)
	nb, err2 := config.NormalizeURL(b)
	return err1 == nil && err2 == nil && na == nb
}

// currentState reads the running settings: the scheduler's status by ask,
// each backend's weight, cap and drain from its published snapshot.
func currentState(ctx context.Context, sched *scheduler.Scheduler, file *config.Config) (savedState, error) {
	st, err := sched.Status(ctx)
	if err != nil {
		return savedState{}, err
	}
	out := savedState{Version: stateVersion, Policy: st.Policy, Backends: []savedBackend{},
		Sticky: config.Sticky{Enabled: st.StickyEnabled, Key: st.StickyKey},
		Canary: config.Canary{Backend: st.CanaryURL, Percent: st.CanaryPercent}}
	if file != nil {
		r := routingOf(file)
		out.File = &r
	}
	if out.Sticky.Key == "" {
		out.Sticky.Key = "ip"
	}
	for _, u := range st.Backends {
		h := sched.Lookup(u)
		if h == nil {
			continue // removed since the status was taken; the next write has it right
		}
		s := h.Snapshot()
		out.Backends = append(out.Backends, savedBackend{URL: u, Weight: s.Weight, MaxInflight: int(s.MaxInflight),
			Draining: s.State == backendactor.StateDraining, Protocol: h.Protocol()})
	}
	return out, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new file: temp file in the same directory, fsync, rename,
// fsync of the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".lbd-state-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o600)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return werr
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
