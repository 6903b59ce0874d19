package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/internal/synth"
)

// startOwnedApp is startLBD for tests that shut lbd down themselves and
// then look at what it left behind.
func startOwnedApp(t *testing.T, backends []*synth.Running, mutate func(*config.Config)) (*Daemon, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Warmup.Duration = 0
	for _, b := range backends {
		cfg.Backends = append(cfg.Backends, config.Backend{URL: b.URL(), Weight: 1, Protocol: "http1"})
	}
	mutate(cfg)
	require.NoError(t, cfg.Validate())
	d := startDaemon(t, cfg)
	return d, "http://" + d.DataAddr()
}

func shutdown(t *testing.T, app *Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, app.Shutdown(ctx))
}

func TestAccessLogLinesSurviveShutdown(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	app, url := startOwnedApp(t, startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}), func(c *config.Config) {
		c.AccessLog = config.AccessLog{Mode: "on", SampleRate: 1, File: logFile}
	})
	const n = 300
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := range n / 10 {
				req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/g%d/%d", url, g, i), nil)
				require.NoError(t, err)
				req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ids <- resp.Header.Get("X-Request-Id")
			}
		})
	}
	wg.Wait()
	close(ids)
	shutdown(t, app) // well within the 100ms flush period: the last batch is written by Close

	f, err := os.Open(logFile)
	require.NoError(t, err)
	defer f.Close()
	logged := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
		for _, k := range []string{"time", "req_id", "method", "host", "path", "status", "latency_ms", "upstream_ms",
			"backend", "policy", "attempts", "client", "bytes", "reject", "trace_id"} {
			require.Contains(t, line, k)
		}
		require.Equal(t, 200.0, line["status"])
		require.Equal(t, "p2c-ewma", line["policy"])
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", line["trace_id"])
		logged[line["req_id"].(string)] = true
	}
	require.Len(t, logged, n, "one line per request, none lost at shutdown")
	for id := range ids {
		require.True(t, logged[id], id)
	}
}

func TestMetricsJSONAdvisoryAndDumpFiles(t *testing.T) {
	dumpDir := t.TempDir()
	backends := startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	app, url := startOwnedApp(t, backends, func(c *config.Config) {
		c.AccessLog.Mode = "off"
		c.MetricsDump = config.MetricsDump{Dir: dumpDir, Interval: config.Duration(10 * time.Second), Keep: 3}
	})
	admin := "http://" + app.AdminAddr()
	for range 20 {
		resp, err := http.Get(url + "/")
		require.NoError(t, err)
		resp.Body.Close()
	}

	var doc struct {
		Totals struct {
			Requests uint64            `json:"requests"`
			Rejected map[string]uint64 `json:"rejected"`
		} `json:"totals"`
		Rates    *controller.Rates `json:"rates"`
		Backends []struct {
			URL      string `json:"url"`
			Requests uint64 `json:"requests"`
		} `json:"backends"`
		Admission struct {
			Admission map[string]any `json:"admission"`
			AIMD      map[string]any `json:"aimd"`
		} `json:"admission"`
		Advisory *controller.AdvisoryReport `json:"advisory"`
	}
	getJSON(t, admin+"/admin/metrics/json", &doc)
	require.Equal(t, uint64(20), doc.Totals.Requests)
	require.Contains(t, doc.Totals.Rejected, "overload")
	require.NotNil(t, doc.Rates)
	require.Len(t, doc.Backends, 2)
	require.Equal(t, uint64(20), doc.Backends[0].Requests+doc.Backends[1].Requests)
	require.NotEmpty(t, doc.Admission.Admission, "admission counters")
	require.NotEmpty(t, doc.Admission.AIMD, "the adaptive limiter's state (aimd is on by default)")
	require.NotNil(t, doc.Advisory)

	var adv controller.AdvisoryReport
	getJSON(t, admin+"/admin/advisory", &adv)
	require.Equal(t, 15.0, adv.ThresholdPercent)
	require.Equal(t, controller.OverallSeries, adv.Overall.Backend)
	require.NotEmpty(t, adv.Baseline)

	shutdown(t, app) // the dumper writes its last line on the way out
	names, err := filepath.Glob(filepath.Join(dumpDir, controller.DumpFilePattern))
	require.NoError(t, err)
	require.Len(t, names, 1)
	b, err := os.ReadFile(names[0])
	require.NoError(t, err)
	var line controller.Sample
	require.NoError(t, json.Unmarshal(b, &line))
	require.Equal(t, uint64(20), line.Requests)
	require.Len(t, line.Backends, 2)
	for _, be := range line.Backends {
		require.Equal(t, "healthy", be.State)
		require.Equal(t, "closed", be.Breaker)
	}
}
