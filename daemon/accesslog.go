package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/proxy"
)

// accessLogs owns the access log and the file under it; the owner (on a
// reload) and the signal handler (SIGUSR1, for logrotate) change it, one at
// a time under the owner's mailbox or the reopen call.
//
// A new file, or the same path reopened, is opened first — a path that
// cannot be opened refuses the reload — then the log moves to it after
// writing what it buffered to the old one (proxy.LineWriter.SetOutput), so
// no line is lost or split; a new sampling rate applies to the next
// request. Turning the log off hands the data plane no log from the next
// request on; requests already running when it goes off do not log.
type accessLogs struct {
	cfg  config.AccessLog
	log  *proxy.AccessLog // nil when off
	file *os.File         // nil for standard output or off
}

func openAccessLog(c config.AccessLog) (*accessLogs, error) {
	a := &accessLogs{cfg: c}
	if c.Mode == "off" {
		return a, nil
	}
	w, f, err := openOutput(c.File)
	if err != nil {
		return nil, err
	}
	a.log, a.file = proxy.NewAccessLog(w, sampleRate(c)), f
	return a, nil
}

func openOutput(path string) (io.Writer, *os.File, error) {
	if path == "" {
		return os.Stdout, nil, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("access_log.file: %w", err)
	}
	return f, f, nil
}

func sampleRate(c config.AccessLog) float64 {
	if c.Mode == "sampled" {
		return c.SampleRate
	}
	return 1
}

// logChange is a prepared change of the access log: the new output is open.
type logChange struct {
	a    *accessLogs
	next config.AccessLog
	w    io.Writer
	f    *os.File
	open bool // w and f are new
}

// prepare opens what next needs; commit switches; abort closes what prepare opened.
func (a *accessLogs) prepare(next config.AccessLog) (*logChange, error) {
	c := &logChange{a: a, next: next}
	if next.Mode != "off" && (a.log == nil || next.File != a.cfg.File) {
		w, f, err := openOutput(next.File)
		if err != nil {
			return nil, err
		}
		c.w, c.f, c.open = w, f, true
	}
	return c, nil
}

func (c *logChange) abort() {
	if c.f != nil {
		c.f.Close()
	}
}

// commit applies the change and returns the log the data plane uses now.
func (c *logChange) commit() (*proxy.AccessLog, error) {
	a, next := c.a, c.next
	defer func() { a.cfg = next }()
	switch {
	case next.Mode == "off":
		err := a.close(context.Background())
		a.log, a.file = nil, nil
		return nil, err
	case a.log == nil:
		a.log, a.file = proxy.NewAccessLog(c.w, sampleRate(next)), c.f
		return a.log, nil
	}
	a.log.SetSampleRate(sampleRate(next))
	if !c.open {
		return a.log, nil
	}
	return a.log, a.switchTo(c.w, c.f)
}

// switchTo moves the log to w and closes the file it wrote to before.
func (a *accessLogs) switchTo(w io.Writer, f *os.File) error {
	err := a.log.SetOutput(w)
	if a.file != nil {
		err = errors.Join(err, a.file.Close())
	}
	a.file = f
	return err
}

// reopen opens the log's file again (it was rotated away) and moves the
// log to it. Without a file it does nothing.
func (a *accessLogs) reopen() error {
	if a.log == nil || a.cfg.File == "" {
		return nil
	}
	w, f, err := openOutput(a.cfg.File)
	if err != nil {
		return err
	}
	return a.switchTo(w, f)
}

// close writes the last batch, then closes the file under it.
func (a *accessLogs) close(context.Context) error {
	var err error
	if a.log != nil {
		err = a.log.Close()
	}
	if a.file != nil {
		err = errors.Join(err, a.file.Close())
	}
	return err
}
