package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/internal/synth"
)

func TestUntilStop(t *testing.T) {
	sig := make(chan os.Signal)
	ready := make(chan struct{})
	readySeen := make(chan struct{})
	var events []string
	h := hooks{
		ready:  func() { events = append(events, "ready"); close(readySeen) },
		reload: func() { events = append(events, "reload") },
		reopen: func() { events = append(events, "reopen") },
		stop:   func() { events = append(events, "stop") },
	}
	go func() {
		sig <- syscall.SIGHUP // before ready: a reload all the same
		close(ready)
		<-readySeen
		for _, s := range []os.Signal{syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGTERM} {
			sig <- s
		}
	}()
	require.Equal(t, syscall.SIGTERM, untilStop(sig, ready, h))
	require.Equal(t, []string{"reload", "ready", "reopen", "reload", "stop"}, events, "each event once, in order")
}

// logLines collects the daemon's JSON log lines for a test to wait on.
type logLines struct {
	mu      sync.Mutex
	lines   []map[string]any
	changed chan struct{}
}

func newLogLines() *logLines { return &logLines{changed: make(chan struct{}, 1)} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			l.lines = append(l.lines, m)
		}
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// wait returns the first line from index *from on whose msg is msg, and
// moves *from past it.
func (l *logLines) wait(t *testing.T, from *int, msg string) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		for ; *from < len(l.lines); *from++ {
			if l.lines[*from]["msg"] == msg {
				m := l.lines[*from]
				*from++
				l.mu.Unlock()
				return m
			}
		}
		l.mu.Unlock()
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("no log line %q within 10s", msg)
		}
	}
}

// The daemon as main runs it: SIGHUP reloads the file it started with (a
// broken file changes nothing), SIGTERM stops it with exit code 0. The
// signals go to this test process, where run has caught them.
func TestSignalsReloadAndStop(t *testing.T) {
	for _, k := range []string{"LB_PORT", "LB_ADMIN_ADDR", "LB_ADMIN_TOKEN"} {
		t.Setenv(k, "")
	}
	bs := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	path := filepath.Join(t.TempDir(), "config.json")
	writeConfig(t, path, bs[:1])
	logs := newLogLines()
	exit := make(chan int, 1)
	go func() { exit <- run([]string{"-config", path}, io.Discard, logs) }()
	from := 0
	adminURL := "http://" + logs.wait(t, &from, "lbd started")["admin"].(string)
	backends := func() int {
		return len(getJSON(t, adminURL+"/admin/backends")["backends"].([]any))
	}
	require.Equal(t, 1, backends())

	writeConfig(t, path, bs)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	logs.wait(t, &from, "config reloaded")
	require.Equal(t, 2, backends())

	require.NoError(t, os.WriteFile(path, []byte(`{"backends":[{"url":"ftp://x"}]}`), 0o600))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	refused := logs.wait(t, &from, "config reload refused; keeping the running configuration")
	require.Contains(t, refused["err"], "backends[0].url")
	require.Equal(t, 2, backends(), "a broken file changes nothing")

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case code := <-exit:
		require.Equal(t, 0, code)
	case <-time.After(20 * time.Second):
		t.Fatal("lbd did not stop on SIGTERM")
	}
}
