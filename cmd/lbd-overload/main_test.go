package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
)

func TestCapacityBackendQueuesBeyondItsWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newCapacityBackend("b", 2, 20*time.Millisecond)
		var done atomic.Int32
		for range 5 {
			go func() {
				rec := httptest.NewRecorder()
				b.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				if rec.Code == http.StatusOK {
					done.Add(1)
				}
			}()
		}
		for _, want := range []int32{2, 4, 5} { // two at a time, every 20ms
			<-time.After(20 * time.Millisecond)
			synctest.Wait()
			require.Equal(t, want, done.Load())
		}
	})
}

func TestHealthIsNotQueued(t *testing.T) {
	b := newCapacityBackend("b", 1, time.Hour)
	b.slots <- struct{}{} // the only worker is busy
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "b", rec.Header().Get("X-Backend"))
}

func TestConfigsAreValidForLBD(t *testing.T) {
	for _, mode := range []string{"off", "aimd", "gradient2"} {
		data, err := lbdConfig(mode, []string{"http://127.0.0.1:9001", "http://127.0.0.1:9002"}, 100*time.Millisecond, 1024, true)
		require.NoError(t, err)
		cfg, err := config.Parse(data)
		require.NoError(t, err, mode)
		require.NoError(t, cfg.Validate(), mode)
		require.Equal(t, mode != "off", cfg.AIMD.Enabled)
		if mode != "off" {
			require.Equal(t, mode, cfg.AIMD.Algorithm)
			require.True(t, cfg.AIMD.SlowStart)
		}
		require.Equal(t, 1024, cfg.Admission.MaxInflight)
		require.Equal(t, "off", cfg.AccessLog.Mode)
	}
	_, err := lbdConfig("vegas", nil, time.Second, 8, false)
	require.Error(t, err)
}

func TestFlagsAreBounded(t *testing.T) {
	for _, args := range [][]string{
		{"-load", "50"}, {"-duration", "1h"}, {"-backends", "0"}, {"-modes", "off,vegas"},
		{"-workers", "256", "-backends", "16", "-service", "1ms"}, // 4M/s offered
	} {
		_, err := parse(args, io.Discard)
		require.Error(t, err, args)
	}
	o, err := parse(nil, io.Discard)
	require.NoError(t, err)
	require.InDelta(t, 600, o.capacity(), 1e-9, "3 backends x 4 workers / 20ms")
}

func TestMissingBinaryIsReported(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"-lbd", t.TempDir() + "/nope"}, &out, &errb)
	require.Equal(t, 1, code)
	require.True(t, strings.Contains(errb.String(), "go build"), errb.String())
}
