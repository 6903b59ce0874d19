package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/controller"
	"github.com/lbd/lbd/scheduler"
)

// TestSlowHealthyBackendsAreNotShedEndToEnd is issue 10's third symptom
// through the whole data plane: three loopback backends that always take
// 120 ms, 200 requests/s for 3 s, admission with lbd's default adaptive
// limit. Before, most of them were refused with 503 overload. The load is
// paced by a ticker, not a sleep that waits for a state; the assertion is
// on what every request got.
func TestSlowHealthyBackendsAreNotShedEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("3 s of load")
	}
	var backends []string
	for range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(120 * time.Millisecond):
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		backends = append(backends, srv.URL)
	}
	defaults := config.Default()
	lim, err := controller.NewLimiter(nil, controller.LimiterConfigFor(defaults.AIMD, slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, lim.Stop(context.Background())) })
	adm := NewAdmission(AdmissionOptions{MaxInflight: defaults.Admission.MaxInflight, Limit: lim})
	p := startProxy(t, Options{Admitter: adm, Retries: twoRetries}, scheduler.P2CEWMA, backends...)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	statuses := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(5 * time.Millisecond) // 200/s
	defer tick.Stop()
	for range 600 {
		<-tick.C
		wg.Go(func() {
			code := 0
			if resp, err := client.Get(p.url + "/"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			statuses[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	st := lim.Status()
	t.Logf("statuses %v; limit %d, baseline %.0f ms, effective target %.0f ms", statuses, st.Limit, st.BaselineMS, st.EffectiveTargetMS)
	require.Equal(t, map[int]int{http.StatusOK: 600}, statuses, "nothing shed, nothing failed")
	require.EqualValues(t, defaults.AIMD.MaxLimit, st.Limit, "the limit never moved")
}
