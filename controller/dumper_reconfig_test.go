package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// linesIn reads every dump line in dir, oldest file first.
func linesIn(t *testing.T, dir string) []map[string]any {
	t.Helper()
	names, err := dumpFiles(dir)
	require.NoError(t, err)
	var out []map[string]any
	for _, n := range names {
		out = append(out, readLines(t, n)...)
	}
	return out
}

func startDumper(t *testing.T, f *fakeLBD, c DumperConfig) *Dumper {
	t.Helper()
	c.Gatherer, c.Logger = f.reg, quietLog
	d, err := NewDumper(c)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Stop(context.Background())) })
	return d
}

func TestDumperReconfigureSwitchesTheDir(t *testing.T) {
	cases := []struct {
		name          string
		from, to      bool // a dir before and after
		oldAfter      int  // lines in the old dir at the end
		newAfter      int  // lines in the new dir at the end
		newRateWindow float64
	}{
		// 35.5s at 10s: 3 lines, and a last one at the switch.
		{"on to another dir", true, true, 4, 3, 10},
		{"on to off", true, false, 4, 0, 0},
		{"off to on", false, true, 0, 3, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				oldDir, newDir := t.TempDir(), t.TempDir()
				f := newFakeLBD()
				cfg := DumperConfig{Interval: 10 * time.Second, Keep: 5}
				if c.from {
					cfg.Dir = oldDir
				}
				d := startDumper(t, f, cfg)
				<-time.After(35500 * time.Millisecond)
				to := ""
				if c.to {
					to = newDir
				}
				require.NoError(t, d.Reconfigure(context.Background(), to, 10*time.Second, 5))
				<-time.After(30 * time.Second)
				synctest.Wait()
				require.Len(t, linesIn(t, oldDir), c.oldAfter, "nothing more in the old dir after the switch")
				got := linesIn(t, newDir)
				require.Len(t, got, c.newAfter, "a line every interval from the switch")
				if len(got) > 0 {
					require.Equal(t, c.newRateWindow, got[0]["rates"].(map[string]any)["window_s"], "the first line's rates start at the switch")
				}
				require.NoError(t, d.Stop(context.Background()))
			})
		})
	}
}

func TestDumperReconfigureKeepAppliesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		for i := range 6 { // an earlier run's files
			name := fmt.Sprintf("lb-metrics-20000101T0000%02d.000Z-0001.log", i)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("{}\n"), 0o600))
		}
		f := newFakeLBD()
		d := startDumper(t, f, DumperConfig{Dir: dir, Interval: 10 * time.Second, Keep: 10})
		<-time.After(10500 * time.Millisecond)
		names, err := dumpFiles(dir)
		require.NoError(t, err)
		require.Len(t, names, 7)
		require.NoError(t, d.Reconfigure(context.Background(), dir, 10*time.Second, 2))
		after, err := dumpFiles(dir)
		require.NoError(t, err)
		require.Equal(t, names[5:], after, "the two newest remain, the current file among them")
		<-time.After(10 * time.Second)
		synctest.Wait()
		require.Len(t, readLines(t, after[1]), 2, "the current file goes on")
		require.NoError(t, d.Stop(context.Background()))
	})
}

func TestDumperReconfigureInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		f := newFakeLBD()
		d := startDumper(t, f, DumperConfig{Dir: dir, Interval: 10 * time.Second, Keep: 5, FileSpan: time.Minute})
		<-time.After(10500 * time.Millisecond)
		require.Len(t, linesIn(t, dir), 1)
		require.NoError(t, d.Reconfigure(context.Background(), dir, 500*time.Millisecond, 5))
		<-time.After(5 * time.Second)
		synctest.Wait()
		lines := linesIn(t, dir)
		require.Len(t, lines, 11, "the first at once (10s since the last line), then one every 500ms: sampling follows")
		var times []time.Time
		for _, l := range lines[1:] {
			at, err := time.Parse(time.RFC3339Nano, l["time"].(string))
			require.NoError(t, err)
			times = append(times, at)
		}
		for _, g := range gaps(times) {
			require.Equal(t, 500*time.Millisecond, g)
		}
		names, err := dumpFiles(dir)
		require.NoError(t, err)
		require.Len(t, names, 1, "a minute's span is 120 lines now")
		require.NoError(t, d.Stop(context.Background()))
	})
}

func TestDumperReconfigureRefusesAnUnusableDir(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		f := newFakeLBD()
		d := startDumper(t, f, DumperConfig{Dir: dir, Interval: 10 * time.Second})
		err := d.Reconfigure(context.Background(), filepath.Join(file, "sub"), time.Second, 1)
		require.ErrorContains(t, err, "metrics_dump.dir")
		<-time.After(20500 * time.Millisecond)
		synctest.Wait()
		require.Len(t, linesIn(t, dir), 2, "the old dir and interval go on")
		require.NoError(t, d.Stop(context.Background()))
	})
}
