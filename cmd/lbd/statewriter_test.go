package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// newTestWriter is a state writer over a scheduler with two backends.
func newTestWriter(t *testing.T, path string) (*stateWriter, *scheduler.Scheduler) {
	t.Helper()
	reg := actor.NewRegistry()
	sched, err := scheduler.New(scheduler.Config{Policy: "rr", Registry: reg, Logger: quietLog()})
	require.NoError(t, err)
	for _, u := range []string{"http://127.0.0.1:9001", "http://127.0.0.1:9002"} {
		_, err := sched.Add(t.Context(), scheduler.Spec{URL: u, Weight: 1, Initial: true})
		require.NoError(t, err)
	}
	file := config.Default()
	w := startStateWriter(reg, prometheus.NewRegistry(), path, sched, func() *config.Config { return file }, quietLog())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, w.Stop(ctx))
		require.NoError(t, sched.Stop(ctx))
	})
	return w, sched
}

// Calls whose change a write already covers are answered without writing.
func TestStateWriterCoalesces(t *testing.T) {
	w, _ := newTestWriter(t, filepath.Join(t.TempDir(), "state.json"))
	w.asked.Add(2) // two calls took their numbers; their asks are still on the way
	require.NoError(t, w.Persist(t.Context()))
	for n := range uint64(2) {
		err, askErr := actor.Ask(t.Context(), w.ref, func(r chan<- error) any { return persistReq{n + 1, r} })
		require.NoError(t, askErr)
		require.NoError(t, err)
	}
	require.Equal(t, 1.0, testutil.ToFloat64(w.writes.WithLabelValues("success")), "one write for three calls")
	require.NoError(t, w.Persist(t.Context()))
	require.Equal(t, 2.0, testutil.ToFloat64(w.writes.WithLabelValues("success")), "a later call writes again")
}

// Concurrent changes each persisted: when the last call returns, the file
// holds every change, and no write failed.
func TestStateWriterConcurrentChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	w, sched := newTestWriter(t, path)
	h := sched.Lookup("http://127.0.0.1:9001")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if i == 19 {
				require.NoError(t, h.SetCap(t.Context(), 77))
			} else {
				require.NoError(t, h.SetWeight(t.Context(), 1+i%3))
			}
			require.NoError(t, w.Persist(t.Context()))
		})
	}
	wg.Wait()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var st savedState
	require.NoError(t, json.Unmarshal(raw, &st))
	require.Equal(t, 77, st.Backends[0].MaxInflight)
	require.Equal(t, h.Snapshot().Weight, st.Backends[0].Weight, "the last weight set is the one on disk")
	require.Zero(t, testutil.ToFloat64(w.writes.WithLabelValues("failure")))
	t.Logf("20 persisted changes, %v writes", testutil.ToFloat64(w.writes.WithLabelValues("success")))
}

// A write that fails is reported to the caller and counted.
func TestStateWriterFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	require.NoError(t, os.Mkdir(dir, 0o700))
	w, _ := newTestWriter(t, filepath.Join(dir, "state.json"))
	require.NoError(t, os.Remove(dir))
	require.ErrorContains(t, w.Persist(t.Context()), "state_file")
	require.Equal(t, 1.0, testutil.ToFloat64(w.writes.WithLabelValues("failure")))
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
