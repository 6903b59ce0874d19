package backendactor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestEWMARisesAtOnceAndDecays(t *testing.T) {
	const tau = time.Second
	d := Decay{Tau: tau, Grace: 200 * time.Millisecond}
	e := EWMA{}.Observe(10*time.Millisecond, t0, d)
	require.Equal(t, 10*time.Millisecond, e.Value, "the first sample is the average")

	e = e.Observe(100*time.Millisecond, t0.Add(100*time.Millisecond), d)
	require.Equal(t, 100*time.Millisecond, e.Value, "a slow sample replaces the average at once")

	prev := e.Value
	for i := 1; i <= 50; i++ { // 5 s of fast windows
		e = e.Observe(10*time.Millisecond, t0.Add(100*time.Millisecond+time.Duration(i)*100*time.Millisecond), d)
		require.Less(t, e.Value, prev, "decays while samples are faster")
		require.GreaterOrEqual(t, e.Value, 10*time.Millisecond, "never below the samples")
		prev = e.Value
	}
	require.InDelta(t, float64(10*time.Millisecond), float64(e.Value), float64(time.Millisecond), "after 5 tau it has forgotten the spike")

	// Decay depends on elapsed time, not sample count: one sample after tau weighs the old value 1/e.
	e = EWMA{Value: 100 * time.Millisecond, At: t0}.Observe(0, t0.Add(tau), d)
	require.InDelta(t, 100e6/2.718281828, float64(e.Value), 1e3)
	same := EWMA{Value: 100 * time.Millisecond, At: t0}
	for i := 1; i <= 10; i++ {
		same = same.Observe(0, t0.Add(time.Duration(i)*tau/10), d)
	}
	require.InDelta(t, float64(e.Value), float64(same.Value), 1e3, "ten samples over tau decay as much as one")
}

func TestEWMAReadDecaysAfterTheGrace(t *testing.T) {
	d := Decay{Tau: time.Second, Grace: 200 * time.Millisecond}
	e := EWMA{Value: 21 * time.Millisecond, At: t0}
	cases := []struct {
		after time.Duration
		want  float64 // ms
	}{
		{0, 21}, {200 * time.Millisecond, 21}, // within the grace: as folded
		{1200 * time.Millisecond, 21 / 2.718281828}, // one tau past the grace
		{3200 * time.Millisecond, 21 * 0.049787068}, // three
	}
	for _, c := range cases {
		require.InDelta(t, c.want, float64(e.Read(t0.Add(c.after), d))/1e6, 1e-6, "after %v", c.after)
	}
	require.Zero(t, EWMA{}.Read(t0, d), "no samples yet: nothing to decay")

	// A sample after a long silence blends with the decayed value: no jump
	// back towards the stale one.
	at := t0.Add(3200 * time.Millisecond)
	back := e.Observe(time.Millisecond, at, d)
	require.Less(t, back.Value, e.Read(at, d), "a recovered backend's first sample lowers what readers saw")
	require.Greater(t, back.Value, time.Millisecond)
	require.Equal(t, at, back.At)
	// A sample slower than the decayed value puts it straight back.
	require.Equal(t, 21*time.Millisecond, e.Observe(21*time.Millisecond, at, d).Value)
}

func TestBreakerTransitions(t *testing.T) {
	c := BreakerConfig{FailureThreshold: 3, OpenFor: 10 * time.Second, MaxOpenFor: 25 * time.Second, HalfOpenProbes: 1}
	b := Breaker{}
	steps := []struct {
		name  string
		in    BreakerInput
		at    time.Duration
		want  BreakerState
		until time.Duration
	}{
		{"two failures keep it closed", BreakerInput{ConsecutiveFailures: 2, Failures: 2}, 0, Closed, 0},
		{"third consecutive failure opens", BreakerInput{ConsecutiveFailures: 3, Failures: 1}, time.Second, Open, 11 * time.Second},
		{"still open before open_for", BreakerInput{}, 10 * time.Second, Open, 11 * time.Second},
		{"half-open once open_for passed", BreakerInput{}, 11 * time.Second, HalfOpen, 11 * time.Second},
		{"failed probe reopens for twice as long", BreakerInput{Failures: 1, ConsecutiveFailures: 4}, 12 * time.Second, Open, 32 * time.Second},
		{"half-open again", BreakerInput{}, 32 * time.Second, HalfOpen, 32 * time.Second},
		{"second failed probe: doubled but capped", BreakerInput{Failures: 1}, 33 * time.Second, Open, 58 * time.Second},
		{"half-open again after the cap", BreakerInput{}, 58 * time.Second, HalfOpen, 58 * time.Second},
		{"successful probe closes", BreakerInput{Successes: 1}, 59 * time.Second, Closed, 0},
	}
	for _, s := range steps {
		b = b.Next(s.in, t0.Add(s.at), c)
		require.Equal(t, s.want, b.State, s.name)
		if s.until > 0 {
			require.Equal(t, t0.Add(s.until), b.Until, s.name)
		}
	}
	require.Zero(t, b.Trips, "a close forgets the trips")
	b = b.Next(BreakerInput{ConsecutiveFailures: 3}, t0.Add(time.Minute), c)
	require.Equal(t, t0.Add(time.Minute+10*time.Second), b.Until, "after a close the open period starts over")
}

func TestHealthRiseFall(t *testing.T) {
	h := Health{Up: true}
	seq := []struct {
		ok   bool
		want bool
	}{
		{false, true}, {false, true}, {true, true}, // a good probe resets the bad run
		{false, true}, {false, true}, {false, false}, // fall=3
		{true, false}, {false, false}, {true, false}, {true, true}, // rise=2, consecutive
	}
	for i, s := range seq {
		h = h.Next(s.ok, 2, 3, t0, "")
		require.Equal(t, s.want, h.Up, "probe %d", i)
	}
}

func TestWarmupFactor(t *testing.T) {
	cases := []struct {
		el   time.Duration
		want float64
	}{{-time.Second, 0.1}, {0, 0.1}, {15 * time.Second, 0.55}, {30 * time.Second, 1}, {time.Hour, 1}}
	for _, c := range cases {
		require.InDelta(t, c.want, WarmupFactor(t0, t0.Add(c.el), 30*time.Second, 10), 1e-9, c.el.String())
	}
	require.Equal(t, 1.0, WarmupFactor(time.Time{}, t0, 30*time.Second, 10), "no ramp running")
	require.Equal(t, 1.0, WarmupFactor(t0, t0, 0, 10), "warm-up disabled")
}
