package daemon

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/internal/synth"
)

// apiMetrics are the metric families of API.md's Metrics section, plus
// config reloads (issue 5) and the advisory (issue 6). Each must be
// exported by a running lbd that has seen traffic.
var apiMetrics = []string{
	"lbd_requests_total",
	"lbd_request_duration_seconds",
	"lbd_backend_inflight",
	"lbd_backend_ewma_seconds",
	"lbd_backend_up",
	"lbd_backend_state",
	"lbd_breaker_state",
	"lbd_outlier_ejections_total",
	"lbd_health_checks_total",
	"lbd_retries_total",
	"lbd_rejected_total",
	"lbd_admission_inflight",
	"lbd_admission_limit",
	"lbd_actor_mailbox_depth",
	"lbd_actor_messages_total",
	"lbd_config_reloads_total",
	"lbd_advisory_warning",
	"lbd_advisory_current_seconds",
	"lbd_advisory_baseline_seconds",
	// The Go and process collectors, by one family each.
	"go_goroutines",
	"process_cpu_seconds_total",
}

// scrape reads GET /metrics as Prometheus would.
func scrape(t *testing.T, adminURL string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return mfs
}

// driveTraffic sends a mix that touches every data-plane metric: successes
// on distinct paths and from distinct forwarded clients, upstream 5xx that
// get retried, and a no-backend rejection.
func driveTraffic(t *testing.T, l *testLBD) {
	t.Helper()
	for i := range 30 {
		resp, _ := l.get(t, fmt.Sprintf("/item/%d?q=secret%d", i, i), "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	for range 3 {
		resp, _ := l.get(t, "/status/502")
		require.Equal(t, http.StatusBadGateway, resp.StatusCode)
	}
	ctx := context.Background()
	for _, h := range l.sched().Picker().Backends() {
		require.NoError(t, h.Drain(ctx, "test drain"))
	}
	resp, _ := l.get(t, "/")
	require.Equal(t, "no-backend", resp.Header.Get("X-Lbd-Reject"))
	for _, h := range l.sched().Picker().Backends() {
		require.NoError(t, h.Undrain(ctx, "test undrain"))
	}
}

func TestEveryAPIMetricIsExportedAfterTraffic(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}), nil)
	driveTraffic(t, l)
	mfs := scrape(t, l.adminURL)
	var missing []string
	for _, name := range apiMetrics {
		if mf, ok := mfs[name]; !ok || len(mf.GetMetric()) == 0 {
			missing = append(missing, name)
		}
	}
	require.Empty(t, missing, "API.md metrics not exported")

	requests := map[string]float64{}
	for _, m := range mfs["lbd_requests_total"].GetMetric() {
		requests[labelOf(m, "code")] += m.GetCounter().GetValue()
	}
	require.Equal(t, map[string]float64{"200": 30, "502": 3, "503": 1}, requests)
	require.Equal(t, 3.0, mfs["lbd_retries_total"].GetMetric()[0].GetCounter().GetValue(), "each 502 was retried once")
	for _, m := range mfs["lbd_rejected_total"].GetMetric() {
		want := 0.0
		if labelOf(m, "reason") == "no-backend" {
			want = 1
		}
		require.Equal(t, want, m.GetCounter().GetValue(), labelOf(m, "reason"))
	}
}

func TestMetricsPassLintAndLabelsStayBounded(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}), nil)
	driveTraffic(t, l)

	problems, err := testutil.GatherAndLint(l.d.prom)
	require.NoError(t, err)
	require.Empty(t, problems, "promtool check metrics would complain")

	backends := []string{"none", "overall"}
	for _, b := range l.backends {
		backends = append(backends, b.URL())
	}
	for name, mf := range scrape(t, l.adminURL) {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				v := lp.GetValue()
				require.False(t, strings.Contains(v, "/item") || strings.Contains(v, "secret") || strings.Contains(v, "198.51.100"),
					"%s{%s=%q}: a path or client address in a label", name, lp.GetName(), v)
				if lp.GetName() == "backend" {
					require.True(t, slices.Contains(backends, v), "%s{backend=%q}", name, v)
				}
			}
		}
	}
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
