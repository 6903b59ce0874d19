package controller

import (
	"context"
	"time"

	"github.com/lbd/lbd/actor"
)

type reconfigureDumper struct {
	dir      string
	interval time.Duration
	keep     int
	reply    chan<- error
}

// Reconfigure changes the dump directory, the interval between dump lines
// and the number of files kept, while the dumper runs; zero interval and
// keep take the defaults (10s, 24), as in DumperConfig. It returns once
// the actor applied them; a directory that cannot be created changes
// nothing. The rates window of /admin/metrics/json is kept either way.
//
//   - dir: a new one (or "" to stop writing) first gets a last line in the
//     old directory's file, which is then closed, as at stop; files then
//     start in the new one, the first line one interval later, with the
//     rates since the change. The same dir keeps its file.
//   - keep: at once: files beyond it in the current directory are deleted
//     now, the oldest first (in a new directory, at its first file).
//   - interval: for the next line (due one new interval after the last
//     one); lines per file follow it (FileSpan / interval), and the
//     sampling period is at most the interval.
func (d *Dumper) Reconfigure(ctx context.Context, dir string, interval time.Duration, keep int) error {
	err, askErr := actor.Ask(ctx, d.ref, func(r chan<- error) any {
		return reconfigureDumper{dir: dir, interval: interval, keep: keep, reply: r}
	})
	if askErr != nil {
		return askErr
	}
	return err
}

// reconfigure applies new settings on the actor's goroutine.
func (s *dumper) reconfigure(dir string, interval time.Duration, keep int, now time.Time) error {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	if keep <= 0 {
		keep = 24
	}
	perFile := int(max(s.cfg.FileSpan/interval, 1))
	switch {
	case dir != s.cfg.Dir:
		var next *rotator
		if dir != "" {
			var err error
			if next, err = newRotator(dir, keep, perFile); err != nil {
				return err
			}
		}
		s.closeDir(now)
		s.rot = next
		// The first line's rates start from the change, not from the last
		// line written elsewhere (or long ago, before the dumps were off).
		s.last = s.window[len(s.window)-1]
	case s.rot != nil:
		s.rot.keep, s.rot.perFile = keep, perFile
		if err := s.rot.prune(); err != nil {
			s.cfg.Logger.Warn("metrics dump: pruning to the new keep", "dir", dir, "keep", keep, "err", err)
		}
	}
	s.cfg.Dir, s.cfg.Interval, s.cfg.Keep = dir, interval, keep
	s.cfg.SampleEvery = min(s.sampleEvery, interval)
	s.ref.SetTickEvery(s.cfg.SampleEvery)
	s.cfg.Logger.Info("metrics dumper reconfigured", "dir", dir, "interval", interval.String(), "keep", keep)
	return nil
}
