package controller

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/backendactor"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// The first round ends when every initial backend's first result reached
// its actor, whatever the result: a start with every backend down must
// still end it (a daemon waits for it to report ready).
func TestHealthCheckerFirstRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := &backendSet{}
		up, down, slow := newBackend(t, "http://up:1", false), newBackend(t, "http://down:1", false), newBackend(t, "http://slow:1", false)
		set.set(up, down, slow)
		p := newScriptedProber()
		p.set(down.URL(), bad)
		p.set(slow.URL(), hang) // answers by its timeout only
		start := time.Now()
		hc := startChecker(t, set, p, nil, nil) // interval 2s ± 20%, timeout 1s
		defer stopChecker(t, hc)

		require.False(t, closed(hc.FirstRound()))
		<-hc.FirstRound()
		took := time.Since(start)
		require.Less(t, took, 2*time.Second+time.Second+200*time.Millisecond, "within one interval plus the timeout")
		for _, h := range []*backendactor.Handle{up, down, slow} {
			require.Len(t, p.times(h.URL()), 1, "%s: probed once when the round ends", h.URL())
			st, err := h.Stats(context.Background())
			require.NoError(t, err)
			require.NotNil(t, st.LastProbe, "%s: its actor has the result", h.URL())
		}

		// A backend added later is not part of the first round: nothing reopens.
		set.set(up, down, slow, newBackend(t, "http://late:1", true))
		<-time.After(time.Second)
		require.True(t, closed(hc.FirstRound()))
	})
}

func TestHealthCheckerFirstRoundEdges(t *testing.T) {
	t.Run("no backends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hc := startChecker(t, &backendSet{}, newScriptedProber(), nil, func(c *HealthConfig) {
				c.Backends = func() []*backendactor.Handle { return nil }
			})
			defer stopChecker(t, hc)
			require.True(t, closed(hc.FirstRound()), "nothing to probe: over at once")
		})
	})
	t.Run("removed before its probe", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			set := &backendSet{}
			a, b := newBackend(t, "http://a:1", false), newBackend(t, "http://b:1", false)
			set.set(a, b)
			p := newScriptedProber()
			p.set(b.URL(), hang)
			hc := startChecker(t, set, p, nil, func(c *HealthConfig) { c.Timeout = time.Hour })
			defer stopChecker(t, hc)
			<-time.After(3 * time.Second) // both probed; b's probe hangs
			synctest.Wait()
			require.False(t, closed(hc.FirstRound()))
			set.set(a)
			<-time.After(200 * time.Millisecond)
			require.True(t, closed(hc.FirstRound()), "the removed backend no longer holds the round")
		})
	})
	t.Run("stopped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			set := &backendSet{}
			set.set(newBackend(t, "http://a:1", false))
			p := newScriptedProber()
			p.set("http://a:1", hang)
			hc := startChecker(t, set, p, nil, func(c *HealthConfig) { c.Timeout = time.Hour })
			<-time.After(3 * time.Second)
			require.False(t, closed(hc.FirstRound()))
			stopChecker(t, hc)
			require.True(t, closed(hc.FirstRound()), "a stopped checker ends its round")
		})
	})
}
