package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/loadgen"
	"github.com/lbd/lbd/internal/synth"
)

// TestDashboardQueriesReturnDataInPrometheus runs a real Prometheus server
// (Debian's prometheus package) that scrapes an lbd under a bounded load
// every second, then evaluates every query of the Grafana dashboard through
// Prometheus's HTTP API: each must return data. It proves that the dashboard
// and the exposition agree on names, labels and types, which a unit test of
// either alone cannot.
func TestDashboardQueriesReturnDataInPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (not on PATH): install Debian's package (apt-get install -y prometheus; .ci/run does) to evaluate the Grafana dashboard's queries against a real Prometheus")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	l := startLBD(t, startBackends(t,
		synth.Knobs{Name: "a", Latency: 2 * time.Millisecond, Jitter: time.Millisecond},
		synth.Knobs{Name: "b", Latency: 4 * time.Millisecond, Jitter: 2 * time.Millisecond, ErrorRate: 0.02, ErrorStatus: 502},
	), func(c *config.Config) { // one catch-all route, so that the route panel has data
		c.Routes = []config.Route{{Name: "all", Match: config.RouteMatch{}, Pool: config.DefaultPool}}
	})
	prom := startPrometheus(t, bin, l.d.AdminAddr())

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = loadgen.Run(loadCtx, loadgen.Config{URL: l.url + "/", Rate: 200, MaxOutstanding: 32, N: 12_000, Duration: 55 * time.Second})
	})
	defer wg.Wait()
	defer stopLoad()

	left := map[panelQuery]bool{}
	for _, q := range loadDashboard(t).queries("5s") {
		left[q] = true
	}
	require.NotEmpty(t, left)

	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for len(left) > 0 {
		for q := range left {
			n, err := prom.query(ctx, q.expr)
			require.NoError(t, err, "panel %q query %s: %s", q.panel, q.refID, q.expr)
			if n > 0 {
				delete(left, q)
			}
		}
		if len(left) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			for q := range left {
				t.Errorf("panel %q query %s returned no data: %s", q.panel, q.refID, q.expr)
			}
			t.Logf("prometheus output:\n%s", prom.output())
			return
		}
	}
}

// promServer is a Prometheus process the test started.
type promServer struct {
	base string
	out  *lockedBuf
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (p *promServer) output() string {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return p.out.b.String()
}

// startPrometheus starts Prometheus on a free loopback port, scraping
// target every second, and waits until it is ready and has scraped target.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lbd
    static_configs:
      - targets: [%q]
`, target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))

	addr := freeLoopbackAddr(t)
	p := &promServer{base: "http://" + addr, out: &lockedBuf{}}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if n, err := p.query(ctx, `up{job="lbd"} == 1`); err == nil && n == 1 {
			return p
		}
		select {
		case <-tick.C:
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", p.output())
		case <-ctx.Done():
			t.Fatalf("prometheus did not scrape lbd at %s within 30s:\n%s", target, p.output())
		}
	}
}

// query evaluates expr now and returns how many series or values it gave.
func (p *promServer) query(ctx context.Context, expr string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("prometheus answered %s: %w", resp.Status, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", body.Error)
	}
	return len(body.Data.Result), nil
}

// freeLoopbackAddr returns a loopback address whose port the kernel just
// handed out: Prometheus needs a port on its command line.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().(*net.TCPAddr)
	require.NoError(t, ln.Close())
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port))
}
