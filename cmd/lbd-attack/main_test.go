package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/daemon"
	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
)

func TestRefusesNonLoopbackTargets(t *testing.T) {
	for _, args := range [][]string{
		{"-target", "http://10.0.0.1:3030"},
		{"-target", "http://example.com:3030"},
		{"-target", "http://127.0.0.1:3030", "-admin", "http://192.0.2.1:3031"},
	} {
		_, err := parse(args, io.Discard)
		require.ErrorIs(t, err, loadgen.ErrNotLoopback, args)
	}
	// The dialler checks the address it is about to connect to, after any
	// name resolution: nothing leaves the machine.
	_, err := dialLoopback(context.Background(), "192.0.2.1:80", 0)
	require.ErrorContains(t, err, "not a loopback address")
	_, err = parse([]string{"-target", "http://localhost:3030"}, io.Discard)
	require.NoError(t, err)
}

func TestFlagsAreBounded(t *testing.T) {
	for _, args := range [][]string{
		{"-lbd", "x", "-conns", "0"}, {"-lbd", "x", "-conns", "6000"}, {"-lbd", "x", "-duration", "1h"},
		{"-lbd", "x", "-rate", "0"}, {"-lbd", "x", "-attacks", "slowloris,teardrop"}, {"-lbd", "x", "-drip", "1ms"},
		{"-lbd", "x", "-target", "http://127.0.0.1:1"}, {},
	} {
		_, err := parse(args, io.Discard)
		require.Error(t, err, args)
	}
	o, err := parse([]string{"-lbd", "x"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, attackNames(), o.attacks)
	require.Equal(t, 1000, o.conns)
}

func TestConfigIsValidForLBD(t *testing.T) {
	data, err := lbdConfig([]string{"http://127.0.0.1:9001"}, "http://127.0.0.1:9002", "http://127.0.0.1:9003", 5*time.Second)
	require.NoError(t, err)
	cfg, err := config.Parse(data)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	require.Equal(t, "off", cfg.AccessLog.Mode)
	require.Equal(t, 5*time.Second, cfg.Timeouts.ClientStall.D())
	require.Len(t, cfg.Routes, 3)
	require.Contains(t, cfg.Pools, "big")
	require.Contains(t, cfg.Pools, "upload")
}

// Every attack runs, bounded, against an lbd in this process, and lbd
// answers the attackers as it should while nothing counts against a
// backend.
func TestAttacksAgainstAnLBD(t *testing.T) {
	var urls []string
	for range 2 {
		b, err := synth.Start("127.0.0.1:0", synth.Knobs{Name: "b"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		urls = append(urls, b.URL())
	}
	big, err := startBackend(http.HandlerFunc(serveBig), 64<<10)
	require.NoError(t, err)
	t.Cleanup(func() { _ = big.Close() })
	upload, err := startBackend(http.HandlerFunc(serveUpload), 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = upload.Close() })
	data, err := lbdConfig(urls, "http://"+big.Addr, "http://"+upload.Addr, 0)
	require.NoError(t, err)
	cfg, err := config.Parse(data)
	require.NoError(t, err)
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	require.NoError(t, d.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.Shutdown(ctx))
	})

	o, err := parse([]string{"-target", "http://" + d.DataAddr(), "-admin", "http://" + d.AdminAddr(),
		"-conns", "20", "-flood-conns", "5", "-duration", "1s", "-ramp", "1s", "-settle", "0s", "-rest", "200ms", "-rate", "50",
		"-pause", "50ms", "-drip", "100ms"}, io.Discard)
	require.NoError(t, err)
	rows, err := scenario(context.Background(), o, log.New(io.Discard, "", 0))
	require.NoError(t, err)
	require.Len(t, rows, 1+len(attackNames()), "the baseline, then every attack")
	byName := map[string]row{}
	for _, r := range rows {
		byName[r.name] = r
		require.Positive(t, r.sent, r.name)
		require.Zero(t, r.failures, "%s: no backend is blamed", r.name)
	}
	require.Equal(t, 100.0, byName["none"].success())
	require.Positive(t, byName["bad-chunked"].answers["400"], "malformed bodies are the client's 400")
	require.Positive(t, byName["header-flood"].answers["431"])
	require.EqualValues(t, 20, byName["idle"].open)

	var out bytes.Buffer
	printTable(&out, o, rows)
	require.Contains(t, out.String(), "| slowloris | ")
	require.Equal(t, 2+len(rows)+2, strings.Count(out.String(), "\n"), "a heading line, a blank, the table's two header lines and a row each")
}
