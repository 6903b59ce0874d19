package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/lbd/lbd/internal/synth"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan *synth.Running, 1)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-name", "b7", "-health-status", "503", "-seed", "1"}, &out, io.Discard, ready)
	}()
	r := <-ready

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(r.URL() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "b7", resp.Header.Get("X-Backend"))

	cancel()
	require.NoError(t, <-done)
	require.Equal(t, r.URL()+"\n", out.String())
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"rate out of range", []string{"-error-rate", "1.5"}, "error rate"},
		{"unknown flag", []string{"-nope"}, "not defined"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"bad status", []string{"-error-status", "9"}, "error status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t.Context(), append([]string{"-addr", "127.0.0.1:0"}, tc.args...), io.Discard, io.Discard)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
