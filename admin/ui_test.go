package admin_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/admin"
)

// The status page's own files are served without the token, from the
// binary, with a policy that lets it load nothing from elsewhere; nothing
// else is, however its path is written.
func TestStatusPageFiles(t *testing.T) {
	f := newFixture(t, func(o *admin.Options) { o.Token = "s3cret" })
	noRedirect := f.srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(path string) (*http.Response, string) {
		resp, err := noRedirect.Get(f.srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	for path, want := range map[string]string{
		"/ui/": "text/html", "/ui/index.html": "", "/ui/style.css": "text/css", "/ui/app.js": "text/javascript",
	} {
		resp, body := get(path)
		if path == "/ui/index.html" { // the file server's canonical name is the directory
			require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
			continue
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, resp.Header.Get("Content-Type"), want, path)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'", path)
		require.NotEmpty(t, body)
		require.NotContains(t, body, "http://", "%s: nothing fetched from another origin", path)
		require.NotContains(t, body, "https://", "%s: nothing fetched from another origin", path)
	}
	_, html := get("/ui/")
	require.Contains(t, html, `<script src="app.js" defer></script>`)
	require.False(t, strings.Contains(html, "<script>"), "no inline script: the CSP forbids it")

	resp, _ := get("/ui")
	require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
	require.Equal(t, "/ui/", resp.Header.Get("Location"))
	for _, path := range []string{"/ui/../admin/backends", "/ui/./../debug/config", "/admin/backends", "/ui/nothing.js"} {
		resp, _ := get(path)
		require.NotEqual(t, http.StatusOK, resp.StatusCode, "%s must not be served without the token", path)
	}
}
