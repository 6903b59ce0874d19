package controller

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// DumpFilePattern matches the metrics dump files in metrics_dump.dir.
const DumpFilePattern = "lb-metrics-*.log"

// rotator writes JSON lines into lb-metrics-<UTC start>-<seq>.log files in
// dir, starting a new file every perFile lines and deleting the oldest so
// that exactly keep files remain. Names sort in the order the files were
// started (the time first, then a sequence for files started in the same
// millisecond), so "oldest" is the first name, across restarts too: files
// left by an earlier run count against keep. It belongs to the dumper actor
// and is used from its goroutine only.
type rotator struct {
	dir           string
	keep, perFile int

	f     *os.File
	lines int
	seq   int
}

func newRotator(dir string, keep, perFile int) (*rotator, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("metrics_dump.dir: %w", err)
	}
	return &rotator{dir: dir, keep: max(keep, 1), perFile: max(perFile, 1)}, nil
}

// write appends one line (which ends in '\n'), first starting a new file
// when the current one is full.
func (r *rotator) write(line []byte, now time.Time) error {
	if r.f == nil || r.lines >= r.perFile {
		if err := r.rotate(now); err != nil {
			return err
		}
	}
	r.lines++
	if _, err := r.f.Write(line); err != nil {
		return fmt.Errorf("metrics dump %s: %w", r.f.Name(), err)
	}
	return nil
}

func (r *rotator) rotate(now time.Time) error {
	if err := r.close(); err != nil {
		return err
	}
	for {
		r.seq++
		name := filepath.Join(r.dir, fmt.Sprintf("lb-metrics-%s-%04d.log", now.UTC().Format("20060102T150405.000Z"), r.seq))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if errors.Is(err, fs.ErrExist) {
			continue // the same millisecond and sequence as an earlier run's file
		}
		if err != nil {
			return fmt.Errorf("metrics dump: %w", err)
		}
		r.f, r.lines = f, 0
		return r.prune()
	}
}

// prune deletes the oldest dump files beyond keep.
func (r *rotator) prune() error {
	names, err := dumpFiles(r.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names[:max(len(names)-r.keep, 0)] {
		if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("metrics dump: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (r *rotator) close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// dumpFiles lists the dump files in dir, oldest first.
func dumpFiles(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, DumpFilePattern))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
