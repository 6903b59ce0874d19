package daemon

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(file, []byte("  from-file\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	cases := []struct {
		name, env, file, want, err string
	}{
		{"none", "", "", "", ""},
		{"env wins", "from-env", file, "from-env", ""},
		{"file trimmed", "", file, "from-file", ""},
		{"missing file", "", filepath.Join(dir, "nope"), "", "admin.token_file"},
		{"empty file", "", empty, "", "is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Admin.TokenFile = c.file
			got, err := adminToken(cfg, func(string) string { return c.env })
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
}

func TestCheckAdminExposure(t *testing.T) {
	cases := []struct {
		listen, tokenFile, env string
		refused                bool
	}{
		{"127.0.0.1:3031", "", "", false},
		{"[::1]:3031", "", "", false},
		{"localhost:3031", "", "", false},
		{":3031", "", "", true},
		{"0.0.0.0:3031", "", "", true},
		{"10.1.2.3:3031", "", "", true},
		{"0.0.0.0:3031", "/etc/lbd/token", "", false},
		{"0.0.0.0:3031", "", "tok", false},
		{"0.0.0.0:3031", "", " \t\n", true}, // a blank token protects nothing
	}
	for _, c := range cases {
		t.Run(c.listen+c.tokenFile+c.env, func(t *testing.T) {
			cfg := config.Default()
			cfg.Admin.Listen, cfg.Admin.TokenFile = c.listen, c.tokenFile
			if c.tokenFile != "" {
				cfg.Admin.TokenFile = filepath.Join(t.TempDir(), "token")
				require.NoError(t, os.WriteFile(cfg.Admin.TokenFile, []byte("file-token\n"), 0o600))
			}
			err := checkAdminExposure(cfg, func(string) string { return c.env })
			if c.refused {
				require.ErrorContains(t, err, "not loopback-only")
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// The token protects every admin call of a running lbd but the probes.
func TestAdminTokenEndToEnd(t *testing.T) {
	t.Setenv("LB_ADMIN_TOKEN", "e2e-token")
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), nil)
	get := func(path, tok string) int {
		req, err := http.NewRequest(http.MethodGet, l.adminURL+path, nil)
		require.NoError(t, err)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 401, get("/admin/backends", ""))
	require.Equal(t, 401, get("/metrics", "nope"))
	require.Equal(t, 200, get("/metrics", "e2e-token"))
	require.Equal(t, 200, get("/healthz", ""))
	require.Equal(t, 200, get("/readyz", ""))
}

// Item 3 of issue 19: a whitespace-only LB_ADMIN_TOKEN used to pass the
// exposure check (which judged the raw value) and then protect nothing
// (the token is trimmed to empty). Neither a start nor a reload may expose
// the admin API with it. Nothing here binds a non-loopback address: both
// are refused before any listener opens.
func TestBlankTokenCannotExposeTheAdminAPI(t *testing.T) {
	t.Setenv("LB_ADMIN_TOKEN", " \t\n ")
	exposed := func(c *config.Config) { c.Admin.Listen = "0.0.0.0:0" }
	_, err := New(Options{Config: testConfig(nil, exposed), Logger: slog.New(slog.DiscardHandler), Getenv: os.Getenv})
	require.ErrorContains(t, err, "admin.listen: 0.0.0.0:0 is not loopback-only")

	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), nil)
	err = l.reload(t, testConfig(nil, exposed))
	require.ErrorContains(t, err, "is not loopback-only")
	require.True(t, strings.HasPrefix(l.d.AdminAddr(), "127.0.0.1:"), "the admin listener stays where it was")
	resp, err := http.Get(l.adminURL + "/admin/backends")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "and the reload changed nothing else")
	require.Len(t, l.d.Table().Pools[0].Backends, 1)
}
