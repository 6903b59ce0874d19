package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"-version"}, &out, &errb))
	require.Regexp(t, `^lbd \S+ go1\.\d+`, out.String())
}

func TestCheck(t *testing.T) {
	cases := []struct {
		file string
		code int
		want string // in the output
	}{
		{"original.json", 0, "ok"},
		{"full.json", 1, "tls.cert_file: certificate /etc/lbd/tls.crt"}, // valid, but names files this machine lacks
		{"bad-unknown-key-nested.json", 1, "unknown key"},
		{"bad-multiple.json", 1, "backends[0]"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			var out, errb bytes.Buffer
			path := filepath.Join("..", "..", "testdata", "config", c.file)
			require.Equal(t, c.code, run([]string{"-check", "-config", path}, &out, &errb), errb.String())
			require.Contains(t, out.String()+errb.String(), c.want)
			if c.code != 0 {
				for _, line := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
					require.True(t, strings.HasPrefix(line, path+": "), "every problem names the file: %q", line)
				}
			}
		})
	}
	var out, errb bytes.Buffer
	require.Equal(t, 2, run([]string{"-check"}, &out, &errb), "-check needs a file")
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"listen":"127.0.0.1:4000","backends":[{"url":"http://127.0.0.1:8081"}]}`), 0o600))

	cfg, err := loadConfig(flags{config: path})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:4000", cfg.Listen)

	t.Setenv("LB_PORT", "9090")
	t.Setenv("LB_ADMIN_ADDR", "127.0.0.1:9091")
	cfg, err = loadConfig(flags{config: path})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9090", cfg.Listen, "LB_PORT replaces the port only")
	require.Equal(t, "127.0.0.1:9091", cfg.Admin.Listen)

	cfg, err = loadConfig(flags{config: path, listen: "127.0.0.1:7000", admin: "127.0.0.1:7001"})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:7000", cfg.Listen, "flags win")
	require.Equal(t, "127.0.0.1:7001", cfg.Admin.Listen)

	t.Setenv("LB_PORT", "not-a-port")
	_, err = loadConfig(flags{config: path})
	require.ErrorContains(t, err, "not-a-port")
}

// `lbd ctl` is the admin client: its own usage, its own errors, exit 1
// when the admin API cannot be reached.
func TestCtlSubcommand(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 2, run([]string{"ctl", "frobnicate"}, &out, &errb))
	require.Contains(t, errb.String(), `lbd ctl: unknown command "frobnicate"`)
	out.Reset()
	require.Equal(t, 0, run([]string{"ctl", "-h"}, &out, &errb))
	require.Contains(t, out.String(), "backends [-pool P]")
	errb.Reset()
	require.Equal(t, 1, run([]string{"ctl", "-admin", "127.0.0.1:1", "pools"}, &out, &errb), "nothing listens there")
	require.Contains(t, errb.String(), "connection refused")
}
