package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/routing"
)

// The state file keeps what the admin API changed across restarts: the
// overlay (routing.Overlay) and the config file's routing as last applied.
// The owner is its only writer: after every admin change (several queued
// changes share one write) and every reload, atomically. At start it is
// read and rebased on the config file as it is now, the same three-way
// merge a reload does, so a file edited while lbd was down is not ignored.

// restoreState returns the overlay to run with: the state file's, rebased
// on cfg. A missing file restores nothing. A file that cannot be used at
// all is renamed to <path>.corrupt-<unix seconds> so the operator can
// inspect it, and the config file alone applies; a file with some bad
// entries keeps the others, and each bad one is logged.
func (o *owner) restoreState(cfg *config.Config) routing.Overlay {
	path := cfg.StateFile
	if path == "" {
		return routing.Overlay{}
	}
	log := o.d.log
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return routing.Overlay{}
	}
	if err != nil {
		log.Error("state file not restored", "state_file", path, "err", err)
		return routing.Overlay{}
	}
	now := routing.FileOf(cfg)
	st, probs, err := routing.DecodeState(data, now)
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, aside); rerr != nil {
			log.Error("state file unusable and not set aside", "state_file", path, "err", err, "rename_err", rerr)
		} else {
			log.Error("state file unusable; moved aside, starting from the config file alone",
				"state_file", path, "moved_to", aside, ErrAttr(err))
		}
		return routing.Overlay{}
	}
	for _, p := range probs {
		log.Error("state file entry left out", "state_file", path, "problem", p)
	}
	ov := routing.Rebase(st.Overlay, st.File, now)
	log.Info("state restored on top of the config file", "state_file", path, "pools", len(ov.Pools),
		"entries_left_out", len(probs))
	return ov
}

// writeState writes the state file when something changed since the last write.
func (o *owner) writeState() error {
	path := o.file.StateFile
	if path == "" || !o.dirty {
		return nil
	}
	st := routing.State{Overlay: o.ov, File: routing.FileOf(o.file)}
	if err := writeFileAtomic(path, st.Encode()); err != nil {
		o.d.stateW.WithLabelValues("failure").Inc()
		return fmt.Errorf("state_file %s: %w", path, err)
	}
	o.d.stateW.WithLabelValues("success").Inc()
	o.dirty = false
	return nil
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
