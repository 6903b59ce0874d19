package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
)

func TestRestoreState(t *testing.T) {
	base := config.Default()
	base.Backends = []config.Backend{{URL: "https://a.internal:8443", Weight: 1, Protocol: "http1", ServerName: "a"}}
	now := time.Unix(1700000000, 0)
	cases := []struct {
		name, content string
		restored      bool
		err           string
	}{
		{"missing", "", false, ""},
		{"valid", `{"version":1,"backends":[{"url":"https://a.internal:8443/","weight":3,"max_inflight":2,"draining":true},
			{"url":"http://b:81","weight":1,"max_inflight":0,"draining":false}],"policy":"lc","sticky":{"enabled":true,"key":"ip"},
			"canary":{"backend":"http://b:81","percent":5}}`, true, ""},
		{"not json", `{"version":1,`, false, "moved to"},
		{"unknown key", `{"version":1,"backends":[],"policy":"rr","sticky":{},"canary":{},"extra":1}`, false, "unknown field"},
		{"other version", `{"version":2}`, false, "version 2"},
		{"invalid", `{"version":1,"backends":[{"url":"ftp://x","weight":0}],"policy":"rr","sticky":{},"canary":{}}`, false, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if c.content != "" {
				require.NoError(t, os.WriteFile(path, []byte(c.content), 0o600))
			}
			r, err := restoreState(path, base, now)
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				require.Nil(t, r)
				_, statErr := os.Stat(path)
				require.ErrorIs(t, statErr, os.ErrNotExist, "the corrupt file is set aside")
				aside, readErr := os.ReadFile(path + ".corrupt-1700000000")
				require.NoError(t, readErr)
				require.Equal(t, c.content, string(aside), "kept as it was for the operator")
				return
			}
			require.NoError(t, err)
			if !c.restored {
				require.Nil(t, r)
				return
			}
			require.Equal(t, []string{"https://a.internal:8443"}, r.drained)
			require.Equal(t, "lc", r.cfg.Policy)
			require.Len(t, r.cfg.Backends, 2)
			require.Equal(t, 3, r.cfg.Backends[0].Weight)
			require.Equal(t, "a", r.cfg.Backends[0].ServerName, "TLS details come from the config file")
			require.Equal(t, 5.0, r.cfg.Canary.Percent)
			require.Len(t, base.Backends, 1, "the config itself is untouched")
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, writeFileAtomic(path, []byte("one")))
	require.NoError(t, writeFileAtomic(path, []byte("two")))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
	require.Error(t, writeFileAtomic(filepath.Join(dir, "missing", "state.json"), []byte("x")))
}

// FuzzParseState feeds arbitrary state files to the restore: no panic, and
// whatever it accepts is a valid configuration whose drains name its backends.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"backends":[{"url":"http://b:81","weight":2,"max_inflight":1,"draining":true}],"policy":"lc","sticky":{"enabled":true,"key":"ip"},"canary":{"backend":"http://b:81","percent":5}}`))
	f.Add([]byte(`{"version":1,"backends":[],"policy":"rr","sticky":{"key":"ip"},"canary":{},"file":{"backends":[{"url":"http://a:80","weight":1,"max_inflight":0,"protocol":"http1"}],"policy":"rr","sticky":{"key":"ip"},"canary":{}}}`))
	f.Add([]byte(`{"version":1,"backends":[{"url":"HTTP://B:81/","weight":1}],"policy":"wrr","sticky":{"key":"cookie:s"},"canary":{"backend":"http://a:80","percent":100},"file":{"backends":[],"policy":"rr","sticky":{},"canary":{}}}`))
	base := config.Default()
	base.Backends = []config.Backend{{URL: "http://a:80", Weight: 1, Protocol: "http1"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseState(data, base)
		if err != nil {
			return
		}
		if err := r.cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid state: %v", err)
		}
		urls := map[string]bool{}
		for _, b := range r.cfg.Backends {
			u, err := config.NormalizeURL(b.URL)
			if err != nil {
				t.Fatalf("accepted backend URL %q: %v", b.URL, err)
			}
			urls[u] = true
		}
		for _, u := range r.drained {
			if !urls[u] {
				t.Fatalf("drains %s, which is not a backend", u)
			}
		}
	})
}
