package daemon

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// chromium is Debian's headless Chromium (package chromium-headless-shell);
// LBD_CHROMIUM names another.
func chromium(t *testing.T) string {
	path := os.Getenv("LBD_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium-headless-shell"
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("the status page test needs a headless Chromium: %s: %v (apt-get install chromium-headless-shell, or set LBD_CHROMIUM)", path, err)
	}
	return path
}

// browser starts a headless Chromium with a fresh profile, driven over the
// DevTools protocol, for the test's length.
func browser(t *testing.T, width, height int) context.Context {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.DisableGPU, chromedp.NoSandbox, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	// The first action starts the browser, for the context's life.
	require.NoError(t, chromedp.Do(ctx), "start %s", chromium(t))
	return ctx
}

// poll waits until the expression is true in the page, up to timeout.
func poll(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// adminWithToken is mustAdmin with a bearer token.
func adminWithToken(t *testing.T, method, u, token string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s", method, u)
}

// twoPools starts an lbd with two pools of two named backends each, and an
// admin token.
func twoPools(t *testing.T) (*testLBD, []*synth.Running, string) {
	bs := startBackends(t, synth.Knobs{Name: "web-1"}, synth.Knobs{Name: "web-2", Latency: 3 * time.Millisecond},
		synth.Knobs{Name: "api-1"}, synth.Knobs{Name: "api-2", Latency: 8 * time.Millisecond})
	token := "s3cret-token"
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	l := startLBD(t, nil, func(c *config.Config) {
		c.Admin.TokenFile = tokenFile
		backend := func(name string, r *synth.Running) config.Backend {
			return config.Backend{URL: r.URL(), Name: name, Weight: 1, Protocol: "http1"}
		}
		c.Backends = []config.Backend{backend("web-1", bs[0]), backend("web-2", bs[1])}
		api, _ := c.PoolConfig(config.DefaultPool)
		api.Backends = []config.Backend{backend("api-1", bs[2]), backend("api-2", bs[3])}
		api.Policy = "rr"
		c.Pools = map[string]config.Pool{"api": api}
		c.Routes = []config.Route{
			{Name: "api", Match: config.RouteMatch{PathPrefix: "/api/"}, Pool: "api"},
			{Name: "web", Pool: config.DefaultPool},
		}
	})
	return l, bs, token
}

// The status page in a real browser: given the token, it lists every
// backend of both pools with its name, shows a drain made through the API
// within a second, and its own Undrain button works.
func TestStatusPageInABrowser(t *testing.T) {
	ctx := browser(t, 1280, 1000)
	l, bs, token := twoPools(t)
	for range 20 {
		l.get(t, "/")
		l.get(t, "/api/x")
	}

	rows := func(pool string) string {
		return `document.querySelectorAll('#pool-` + pool + ` tbody tr').length`
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(l.adminURL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		poll(`document.querySelector('#conn').classList.contains('down')`, 5*time.Second),
	))
	conn := eval[string](t, ctx, `document.querySelector('#conn').textContent`)
	require.Contains(t, conn, "401", "without the token the API refuses, and the page says so")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#token-form button")),
		poll(rows("default")+` === 2 && `+rows("api")+` === 2`, 5*time.Second),
	))
	require.Equal(t, 2, eval[int](t, ctx, rows("default")))
	require.Equal(t, 2, eval[int](t, ctx, rows("api")))
	require.ElementsMatch(t, []string{"web-1", "web-2", "api-1", "api-2"},
		eval[[]string](t, ctx, `[...document.querySelectorAll('#pools tbody tr .name')].map(e => e.textContent)`))
	for _, b := range bs {
		require.Equal(t, 1, eval[int](t, ctx, `document.querySelectorAll('tr[data-backend="`+b.URL()+`"]').length`),
			"every backend listed: %s", b.URL())
	}

	// A drain through the admin API shows within a second.
	row := `#pool-api tr[data-backend="` + bs[2].URL() + `"]`
	start := time.Now()
	adminWithToken(t, http.MethodPost, l.adminURL+"/admin/drain?pool=api&url="+url.QueryEscape(bs[2].URL()), token)
	require.NoError(t, chromedp.Do(ctx, poll(`document.querySelector('`+row+`').dataset.state === 'draining'`, time.Second)),
		"the drain did not show within a second")
	t.Logf("drain shown %v after the call", time.Since(start).Round(time.Millisecond))
	require.Equal(t, "admin drain", eval[string](t, ctx, `document.querySelector('`+row+` .cause').textContent`))
	require.NoError(t, chromedp.Do(ctx,
		poll(`[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('admin drain'))`, time.Second)),
		"the event is listed")

	// The page's own button undrains, with the token.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row+` button[data-action="undrain"]`)),
		poll(`document.querySelector('`+row+`').dataset.state !== 'draining'`, 2*time.Second),
	))
	require.NotEqual(t, "draining", l.sched("api").Lookup(bs[2].URL()).Snapshot().State)

	if path := os.Getenv("LBD_SCREENSHOT"); path != "" { // make docs/status-page.png
		adminWithToken(t, http.MethodPost, l.adminURL+"/admin/drain?url="+url.QueryEscape(bs[1].URL()), token)
		done := make(chan struct{})
		go func() { // some traffic for the rates, while the page polls
			defer close(done)
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				for _, p := range []string{"/", "/api/x"} {
					if resp, err := http.Get(l.url + p); err == nil {
						resp.Body.Close()
					}
				}
			}
		}()
		require.NoError(t, chromedp.Do(ctx, chromedp.Sleep(2500*time.Millisecond)))
		defer func() { <-done }()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, png, 0o644))
	}
}

// In a narrow window (a phone) the page needs no sideways scrolling and
// still lists every backend.
func TestStatusPageNarrowWindow(t *testing.T) {
	ctx := browser(t, 390, 800)
	l, _, token := twoPools(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(l.adminURL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#token-form button")),
		poll(`document.querySelectorAll('#pools tbody tr').length === 4`, 5*time.Second),
	))
	require.False(t, eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth + 1`),
		"no horizontal scrolling at 390px")
	require.Equal(t, 4, eval[int](t, ctx, `document.querySelectorAll('#pools tbody tr').length`))
}
