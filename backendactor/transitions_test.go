package backendactor

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// recorder collects the transitions an actor reports.
type recorder struct {
	mu sync.Mutex
	ts []Transition
}

func (r *recorder) add(t Transition) {
	r.mu.Lock()
	r.ts = append(r.ts, t)
	r.mu.Unlock()
}

// take returns the transitions since the last call as "kind from>to: cause".
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, t := range r.ts {
		out = append(out, t.Kind+" "+t.From+">"+t.To+": "+t.Cause)
	}
	r.ts = nil
	return out
}

// Every kind of transition a backend actor makes is reported once, with
// the cause in words as the decision was made.
func TestTransitionsCarryTheirCauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		c := testConfig()
		c.Label, c.JoinCause, c.OnTransition = "api-1", "in the config file", rec.add
		c.SkipWarmup = false
		c.Warmup = 5 * time.Second
		h := New(nil, c)
		defer h.Stop()
		ctx := context.Background()
		require.Equal(t, []string{"state >warming: in the config file"}, rec.take())
		<-time.After(5 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{"state warming>healthy: warm-up over"}, rec.take())

		// Health: the probe's words and where the run stands.
		for range 2 {
			require.NoError(t, h.HealthResult(ctx, false, time.Now(), "GET /healthz answered 500"))
		}
		synctest.Wait()
		require.Equal(t, []string{"state healthy>unhealthy: probe GET /healthz answered 500 (2 of fall 2)"}, rec.take())
		for range 2 {
			require.NoError(t, h.HealthResult(ctx, true, time.Now(), "GET /healthz answered 200"))
		}
		synctest.Wait()
		require.Equal(t, []string{"state unhealthy>warming: probe GET /healthz answered 200 (2 of rise 2)"}, rec.take())
		require.NoError(t, h.WarmReset(ctx))
		require.Empty(t, rec.take(), "warming already: no transition")
		<-time.After(5 * time.Second)
		synctest.Wait()
		rec.take()

		// Drain and undrain: the command's cause.
		require.NoError(t, h.Drain(ctx, "admin drain"))
		require.NoError(t, h.Drain(ctx, "admin drain"))
		require.NoError(t, h.Undrain(ctx, "admin undrain"))
		require.Equal(t, []string{"state healthy>draining: admin drain", "state draining>warming: admin undrain"}, rec.take())
		<-time.After(5 * time.Second)
		synctest.Wait()
		rec.take()

		// Ejection: the outlier detector's figures and how long it lasts.
		require.NoError(t, h.Eject(ctx, time.Now().Add(30*time.Second), "consecutive_5xx", "5 consecutive 5xx or gateway failures"))
		require.Equal(t, []string{"state healthy>ejected: outlier: 5 consecutive 5xx or gateway failures; ejected for 30s (ejection 1)"}, rec.take())
		<-time.After(30 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{"state ejected>warming: ejection over"}, rec.take())
		<-time.After(5 * time.Second)
		synctest.Wait()
		rec.take()

		// Breaker: the run that opened it, the period, the probe.
		for range 3 {
			require.True(t, h.Acquire())
			h.Release(time.Millisecond, GatewayError)
		}
		synctest.Wait()
		require.Equal(t, []string{"breaker closed>open: breaker: 3 consecutive failures (threshold 3); open for 10s"}, rec.take())
		<-time.After(10 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{"breaker open>half_open: breaker: open period of 10s over; 1 probe request(s) admitted"}, rec.take())
		require.True(t, h.Acquire())
		h.Release(time.Millisecond, ServerError)
		synctest.Wait()
		require.Equal(t, []string{"breaker half_open>open: breaker: a probe request failed; open again for 20s (trip 2)"}, rec.take())
		<-time.After(20 * time.Second)
		synctest.Wait()
		rec.take()
		require.True(t, h.Acquire())
		h.Release(time.Millisecond, Success)
		synctest.Wait()
		require.Equal(t, []string{
			"state healthy>warming: breaker closed after a probe request succeeded",
			"breaker half_open>closed: breaker: a probe request succeeded",
		}, rec.take())

		// Checks turned off bring an unhealthy backend back, saying so.
		for range 2 {
			require.NoError(t, h.HealthResult(ctx, false, time.Now(), "GET /healthz: connect: connection refused"))
		}
		synctest.Wait()
		rec.take()
		r := c.Rules()
		r.HealthChecked = false
		require.NoError(t, h.SetRules(ctx, r))
		require.Equal(t, []string{"state unhealthy>warming: active health checks turned off"}, rec.take())
		st := stats(t, h)
		require.Equal(t, "active health checks turned off", st.StateCause, "Stats says why, too")
		require.Equal(t, "breaker: a probe request succeeded", st.BreakerCause)
		require.Equal(t, time.Now(), *st.StateSince)

		// The name travels with every transition; removal is the last one.
		require.NoError(t, h.SetName(ctx, "api-one"))
		require.Equal(t, "api-one", h.Name())
		require.NoError(t, h.Retire(ctx, time.Now().Add(time.Minute), "admin remove"))
		rec.mu.Lock()
		last := rec.ts[len(rec.ts)-1]
		rec.mu.Unlock()
		require.Equal(t, []string{"state warming>removed: admin remove"}, rec.take(), "its drain is part of the removal")
		require.Equal(t, "api-one", last.Name)
		require.Equal(t, c.URL, last.URL)
		<-h.Done()
	})
}

func TestFirstProbeOfANewBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		c := testConfig()
		c.StartUnhealthy, c.JoinCause, c.OnTransition = true, "admin add", rec.add
		h := New(nil, c)
		defer h.Stop()
		require.NoError(t, h.HealthResult(context.Background(), true, time.Now(), "GET /healthz answered 200"))
		synctest.Wait()
		require.Equal(t, []string{"state >unhealthy: admin add", "state unhealthy>warming: first probe GET /healthz answered 200"}, rec.take())
	})
}
