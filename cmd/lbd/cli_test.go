package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHelpExitsZeroWithGroupedUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}, {"--help"}, {"help"}} {
		var out, errb bytes.Buffer
		require.Equal(t, 0, run(args, &out, &errb), "%v", args)
		require.Empty(t, errb.String(), "%v: help goes to standard output", args)
		for _, want := range []string{"Usage:", "\nRun:\n", "\nCheck and inspect:\n", "\nSignals:\n", "SIGUSR1", "NOTIFY_SOCKET", "-pidfile FILE", "lbd ctl [-admin ADDR]"} {
			require.Contains(t, out.String(), want, "%v", args)
		}
	}
}

func TestUsageListsEveryFlag(t *testing.T) {
	var f flags
	fs := flagSet(&f, io.Discard)
	grouped := map[string]bool{}
	for _, g := range usageGroups {
		for _, name := range g.flags {
			require.NotNil(t, fs.Lookup(name), "group %s names an unknown flag -%s", g.title, name)
			grouped[name] = true
		}
	}
	fs.VisitAll(func(fl *flag.Flag) { require.True(t, grouped[fl.Name], "-%s is in no usage group", fl.Name) })
}

func TestBadUsageExitsTwo(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command or stray argument "frobnicate"`},
		{[]string{"-demo", "extra"}, `stray argument "extra"`},
		{[]string{"help", "me"}, `stray argument "help"`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-listen"}, "flag needs an argument"},
	} {
		var out, errb bytes.Buffer
		require.Equal(t, 2, run(c.args, &out, &errb), "%v", c.args)
		require.Contains(t, errb.String(), c.want)
		require.Contains(t, errb.String(), "lbd -h", "%v: says where the usage is", c.args)
	}
}

func TestHealthcheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			io.WriteString(w, "ok")
			return
		}
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer ok.Close()
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"-healthcheck", ok.URL + "/healthz"}, &out, &errb), errb.String())
	require.Equal(t, 1, run([]string{"-healthcheck", ok.URL + "/readyz"}, &out, &errb))
	require.Contains(t, errb.String(), "503")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	errb.Reset()
	require.Equal(t, 1, run([]string{"-healthcheck", "http://" + addr + "/healthz"}, &out, &errb), "nothing listens")
	require.Contains(t, errb.String(), "connection refused")
}
