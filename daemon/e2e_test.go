package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

func three(lat ...time.Duration) []synth.Knobs {
	names := []string{"a", "b", "c"}
	ks := make([]synth.Knobs, len(lat))
	for i, l := range lat {
		ks[i] = synth.Knobs{Name: names[i], Latency: l}
	}
	return ks
}

func TestEachPolicyThroughTheProxy(t *testing.T) {
	cases := []struct {
		policy string
		weight int // of backend a
		lat    []time.Duration
		check  func(t *testing.T, m map[string]int)
	}{
		{"rr", 4, []time.Duration{0, 0, 0}, func(t *testing.T, m map[string]int) {
			require.Equal(t, map[string]int{"a": 30, "b": 30, "c": 30}, m, "sequential rr is exact")
		}},
		{"wrr", 4, []time.Duration{0, 0, 0}, func(t *testing.T, m map[string]int) {
			require.Equal(t, map[string]int{"a": 60, "b": 15, "c": 15}, m, "weights 4:1:1")
		}},
		{"lc", 1, []time.Duration{0, 0, 0}, func(t *testing.T, m map[string]int) {
			require.Len(t, m, 3, "sequential requests tie at zero in flight; ties are spread")
		}},
		{"p2c-ewma", 1, []time.Duration{time.Millisecond, time.Millisecond, 60 * time.Millisecond}, func(t *testing.T, m map[string]int) {
			require.GreaterOrEqual(t, m["a"]+m["b"], 81, "the slow backend is avoided once its latency is known: %v", m)
		}},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			l := startLBD(t, startBackends(t, three(c.lat...)...), func(cfg *config.Config) {
				cfg.Policy = c.policy
				cfg.Backends[0].Weight = c.weight
			})
			if c.policy == "p2c-ewma" {
				l.spread(t, 20) // learn the latencies: a backend with no samples yet is tried first
			}
			c.check(t, l.spread(t, 90))
		})
	}
}

func TestRequestIDAndForwardedHeaders(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), nil)

	resp, _ := l.get(t, "/", "X-Request-Id", "my-id-42")
	require.Equal(t, "my-id-42", resp.Header.Get("X-Request-Id"), "kept for the client")
	require.Equal(t, "my-id-42", resp.Header.Get("X-Seen-Request-Id"), "kept for the backend")

	resp, _ = l.get(t, "/", "X-Forwarded-For", "203.0.113.9", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	id := resp.Header.Get("X-Request-Id")
	require.Len(t, id, 20, "an xid was made")
	require.Equal(t, id, resp.Header.Get("X-Seen-Request-Id"), "and sent upstream")
	require.Equal(t, "203.0.113.9, 127.0.0.1", resp.Header.Get("X-Seen-Forwarded-For"))
	require.Equal(t, "http", resp.Header.Get("X-Seen-Forwarded-Proto"))
	require.Equal(t, strings.TrimPrefix(l.url, "http://"), resp.Header.Get("X-Seen-Forwarded-Host"))
	require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", resp.Header.Get("X-Seen-Traceparent"))
}

func TestNoEligibleBackendIs503(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}), nil)
	for _, h := range l.sched().Picker().Backends() {
		require.NoError(t, h.Drain(context.Background(), "test drain"))
	}
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "no-backend", resp.Header.Get("X-Lbd-Reject"))
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"))

	r, err := http.Get(l.adminURL + "/readyz")
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
}

func TestDeadBackendIsRetriedElsewhere(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now: connection refused

	l := startLBD(t, startBackends(t, synth.Knobs{Name: "alive"}), func(cfg *config.Config) {
		cfg.Policy = "rr"
		cfg.Backends = append(cfg.Backends, config.Backend{URL: dead, Weight: 1, Protocol: "http1"})
	})
	for range 20 {
		resp, _ := l.get(t, "/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "alive", resp.Header.Get("X-Backend"))
	}
}

func TestServerSentEventsStream(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), nil)
	resp, err := http.Get(l.url + "/sse?n=3&every=20ms")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	var events int
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") {
			events++
		}
	}
	require.Equal(t, 3, events)
}

func TestAdminShowsBackendsAndActors(t *testing.T) {
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"}), nil)
	l.spread(t, 4)
	var backends struct {
		Backends []struct {
			URL      string `json:"url"`
			State    string `json:"state"`
			Breaker  string `json:"breaker"`
			Requests int    `json:"requests"`
		} `json:"backends"`
	}
	getJSON(t, l.adminURL+"/admin/backends", &backends)
	require.Len(t, backends.Backends, 2)
	total := 0
	for _, b := range backends.Backends {
		require.Equal(t, "healthy", b.State)
		require.Equal(t, "closed", b.Breaker)
		total += b.Requests
	}
	require.Equal(t, 4, total)

	var actors struct {
		Actors []struct {
			Name, Kind string
			MailboxCap int `json:"mailbox_cap"`
		} `json:"actors"`
	}
	getJSON(t, l.adminURL+"/debug/actors", &actors)
	kinds := map[string]int{}
	for _, a := range actors.Actors {
		kinds[a.Kind]++
		require.Positive(t, a.MailboxCap)
	}
	require.Equal(t, 2, kinds["backend"])
	require.Equal(t, 1, kinds["scheduler"])
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}
