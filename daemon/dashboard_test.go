package daemon

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

const dashboardFile = "../deploy/grafana/dashboards/lbd.json"

type dashboard struct {
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// panelQuery is one query of one dashboard panel.
type panelQuery struct{ panel, refID, expr string }

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

// queries returns every panel's queries with Grafana's variables replaced
// the way Grafana would for "All" instances and a rate interval fitting a
// scrape interval of a few seconds.
func (d dashboard) queries(rateInterval string) []panelQuery {
	r := strings.NewReplacer("$__rate_interval", rateInterval, "$job", ".+", "$instance", ".+", "$pool", ".+")
	var out []panelQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{panel: p.Title, refID: tg.RefID, expr: r.Replace(tg.Expr)})
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\b(?:lbd|go|process)_[a-z0-9_]+`)

// metricsIn returns the metric families a query reads (histogram series
// folded into their family).
func metricsIn(expr string) []string {
	var out []string
	for _, m := range metricName.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok && strings.HasSuffix(base, "_seconds") {
				m = base
			}
		}
		out = append(out, m)
	}
	return out
}

func TestDashboardPanelsQueryExistingLBDMetrics(t *testing.T) {
	d := loadDashboard(t)
	require.Equal(t, "lbd-overview", d.UID)

	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}), func(c *config.Config) {
		c.Routes = []config.Route{{Name: "all", Match: config.RouteMatch{}, Pool: config.DefaultPool}} // the route panel's series
	})
	driveTraffic(t, l)
	exported := scrape(t, l.adminURL)

	used := map[string]bool{}
	titles := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		titles[p.Title] = true
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		require.Equal(t, datasource{"prometheus", "${datasource}"}, p.Datasource, p.Title)
		for _, tg := range p.Targets {
			names := metricsIn(tg.Expr)
			require.NotEmpty(t, names, "panel %q query %s reads no lbd metric: %s", p.Title, tg.RefID, tg.Expr)
			for _, n := range names {
				used[n] = true
				if _, ok := exported[n]; !ok {
					t.Errorf("panel %q query %s reads %s, which lbd does not export", p.Title, tg.RefID, n)
				}
			}
		}
	}
	for _, n := range apiMetrics {
		require.True(t, used[n] || !strings.HasPrefix(n, "lbd_"), "no panel shows %s", n)
	}
	// The panels issue 6 asks for.
	for _, title := range []string{
		"Requests/s by backend", "Error ratio (5xx)", "Latency p50 / p90 / p99", "Peak-EWMA latency per backend",
		"In-flight per backend", "Admission limit vs admitted in-flight", "Rejections/s by reason",
		"Circuit breakers", "Backends by state", "Health checks/s by result", "Outlier ejections", "Retries/s",
		"Actor mailbox depth",
	} {
		require.True(t, titles[title], "no panel %q", title)
	}
}

func TestMetricsInFoldsHistogramSeries(t *testing.T) {
	require.Equal(t, []string{"lbd_request_duration_seconds", "lbd_requests_total"},
		metricsIn(`histogram_quantile(0.9, sum by (le) (rate(lbd_request_duration_seconds_bucket[1m]))) / sum(rate(lbd_requests_total[1m]))`))
}
