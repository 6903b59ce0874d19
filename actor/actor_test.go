package actor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// counter is a minimal behavior: it counts, answers gets, blocks on demand and panics on demand.
type counter struct {
	n        int
	restarts int
	ticks    int
}

type (
	inc      struct{}
	get      struct{ reply chan<- int }
	boom     struct{}
	block    struct{ until <-chan struct{} }
	getTicks struct{ reply chan<- int }
)

func (c *counter) Receive(msg any) {
	switch m := msg.(type) {
	case inc:
		c.n++
	case get:
		m.reply <- c.n
	case getTicks:
		m.reply <- c.ticks
	case boom:
		c.n = -1000 // a half-done mutation the restart must repair
		panic("boom")
	case block:
		<-m.until
	}
}

func (c *counter) Tick(time.Time) { c.ticks++ }

func (c *counter) Restart() {
	c.restarts++
	c.n = 0
}

func askCount(ctx context.Context, r *Ref) (int, error) {
	return Ask(ctx, r, func(reply chan<- int) any { return get{reply} })
}

func TestTellAndAsk(t *testing.T) {
	reg := NewRegistry()
	r := Spawn(reg, &counter{}, Options{Name: "c", Kind: "test", Logger: quiet})
	defer r.StopWait(context.Background())
	for range 3 {
		require.NoError(t, r.Tell(inc{}))
	}
	n, err := askCount(context.Background(), r)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	st := r.Stats()
	require.Equal(t, uint64(4), st.Processed)
	require.False(t, st.LastMessageAt.IsZero())
}

func TestAskTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := Spawn(nil, &counter{}, Options{Name: "slow", Logger: quiet})
		release := make(chan struct{})
		require.NoError(t, r.Tell(block{until: release}))

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := askCount(ctx, r)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, 50*time.Millisecond, time.Since(start), "the ask gives up exactly at its deadline")

		close(release)
		n, err := askCount(context.Background(), r)
		require.NoError(t, err, "the actor keeps answering after a caller gave up")
		require.Equal(t, 0, n)
		r.Stop()
		synctest.Wait()
	})
}

func TestFullMailbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := Spawn(nil, &counter{}, Options{Name: "full", Mailbox: 2, Logger: quiet})
		release := make(chan struct{})
		require.NoError(t, r.Tell(block{until: release}))
		synctest.Wait() // the actor holds the block message; the mailbox is empty

		require.NoError(t, r.Tell(inc{}))
		require.NoError(t, r.Tell(inc{}))
		require.ErrorIs(t, r.Tell(inc{}), ErrMailboxFull, "tell never blocks the sender")
		require.Equal(t, uint64(1), r.Stats().Dropped)
		require.Equal(t, 2, r.Stats().MailboxLen)

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := r.Send(ctx, inc{})
		require.ErrorIs(t, err, context.DeadlineExceeded, "send waits a bounded time, then names the cause")

		close(release)
		n, err := askCount(context.Background(), r)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		r.Stop()
		synctest.Wait()
	})
}

func TestRestartAfterPanic(t *testing.T) {
	c := &counter{}
	reg := NewRegistry()
	r := Spawn(reg, c, Options{Name: "p", Kind: "test", Logger: quiet})
	require.NoError(t, r.Tell(inc{}))
	require.NoError(t, r.Tell(boom{}))
	require.NoError(t, r.Tell(inc{}))
	n, err := askCount(context.Background(), r)
	require.NoError(t, err, "the actor survives its panic")
	require.Equal(t, 1, n, "Restart repaired the state, then the next message applied")
	require.Equal(t, uint64(1), reg.Snapshot()[0].Restarts)
	require.NoError(t, r.StopWait(context.Background()))
	require.Equal(t, 1, c.restarts)
}

func TestTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := Spawn(nil, &counter{}, Options{Name: "t", TickEvery: 100 * time.Millisecond, Logger: quiet})
		<-time.After(350 * time.Millisecond) // the bubble's fake clock jumps; nothing waits in real time
		synctest.Wait()
		n, err := Ask(context.Background(), r, func(reply chan<- int) any { return getTicks{reply} })
		require.NoError(t, err)
		require.Equal(t, 3, n)
		r.Stop()
		synctest.Wait()
	})
}

func TestStopLeavesNothingBehind(t *testing.T) {
	reg := NewRegistry()
	refs := make([]*Ref, 0, 10)
	for i := range 10 {
		refs = append(refs, Spawn(reg, &counter{}, Options{Name: string(rune('a' + i)), TickEvery: time.Millisecond, Logger: quiet}))
	}
	require.Equal(t, 10, reg.Len())
	for _, r := range refs {
		require.NoError(t, r.StopWait(context.Background()))
	}
	require.Equal(t, 0, reg.Len(), "stopped actors leave the registry")
	require.ErrorIs(t, refs[0].Tell(inc{}), ErrStopped)
	_, err := askCount(context.Background(), refs[0])
	require.True(t, errors.Is(err, ErrStopped))
	goleak.VerifyNone(t)
}

func TestPingIsAnsweredByTheRuntime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry()
		c := &counter{}
		r := Spawn(reg, c, Options{Name: "c", Kind: "test", Logger: quiet})
		ctx := t.Context()
		require.NoError(t, r.Ping(ctx))
		require.Equal(t, []*Ref{r}, reg.Refs())
		n, err := askCount(ctx, r)
		require.NoError(t, err)
		require.Zero(t, n, "the behavior never sees a ping")

		// A stuck behavior does not answer within the deadline.
		release := make(chan struct{})
		require.NoError(t, r.Tell(block{release}))
		short, cancel := context.WithTimeout(ctx, time.Second)
		err = r.Ping(short)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		close(release)
		require.NoError(t, r.Ping(ctx))

		require.NoError(t, r.StopWait(ctx))
		require.ErrorIs(t, r.Ping(ctx), ErrStopped)
		require.Empty(t, reg.Refs())
	})
}

// pacer is a ticker that changes its own tick period when told to.
type pacer struct {
	ref   *Ref
	ticks []time.Time
}

type (
	setPace  struct{ d time.Duration }
	getPaces struct{ reply chan<- []time.Time }
)

func (p *pacer) Bind(r *Ref) { p.ref = r }
func (p *pacer) Receive(msg any) {
	switch m := msg.(type) {
	case setPace:
		p.ref.SetTickEvery(m.d)
	case getPaces:
		m.reply <- append([]time.Time(nil), p.ticks...)
	}
}
func (p *pacer) Tick(now time.Time) { p.ticks = append(p.ticks, now) }

func TestSetTickEveryChangesThePace(t *testing.T) {
	for _, c := range []struct {
		name  string
		first time.Duration // Options.TickEvery
		then  time.Duration // SetTickEvery at 1s
		// ticks in (0, 1s] and in (1s, 2s]
		before, after int
	}{
		{"faster", 250 * time.Millisecond, 100 * time.Millisecond, 4, 10},
		{"slower", 100 * time.Millisecond, 500 * time.Millisecond, 10, 2},
		{"stop", 100 * time.Millisecond, 0, 10, 0},
		{"start", 0, 200 * time.Millisecond, 0, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				r := Spawn(nil, &pacer{}, Options{Name: "p", TickEvery: c.first, Logger: quiet})
				<-time.After(time.Second + time.Millisecond)
				require.NoError(t, r.Send(t.Context(), setPace{c.then}))
				// Read between two ticks: a tick due at the very instant of
				// the read may be taken after it.
				<-time.After(time.Second + 49*time.Millisecond)
				ticks, err := Ask(t.Context(), r, func(reply chan<- []time.Time) any { return getPaces{reply} })
				require.NoError(t, err)
				var before, after int
				for _, at := range ticks {
					if at.Sub(start) <= time.Second {
						before++
					} else {
						after++
					}
				}
				require.Equal(t, c.before, before, "ticks before the change: %v", ticks)
				require.Equal(t, c.after, after, "ticks after the change: %v", ticks)
				require.NoError(t, r.StopWait(t.Context()))
			})
		})
	}
}

// bindPacer asks for its period in Bind, before its goroutine runs.
type bindPacer struct{ pacer }

func (p *bindPacer) Bind(r *Ref) {
	p.ref = r
	r.SetTickEvery(time.Second)
}

func TestSetTickEveryInBindOverridesOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := Spawn(nil, &bindPacer{}, Options{Name: "b", TickEvery: time.Millisecond, Logger: quiet})
		<-time.After(3500 * time.Millisecond)
		ticks, err := Ask(t.Context(), r, func(reply chan<- []time.Time) any { return getPaces{reply} })
		require.NoError(t, err)
		require.Len(t, ticks, 3)
		require.NoError(t, r.StopWait(t.Context()))
	})
}

func TestSetTickEveryToTheSamePeriodKeepsThePhase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		r := Spawn(nil, &pacer{}, Options{Name: "p", TickEvery: time.Second, Logger: quiet})
		<-time.After(1500 * time.Millisecond)
		require.NoError(t, r.Send(t.Context(), setPace{time.Second}))
		<-time.After(2 * time.Second)
		ticks, err := Ask(t.Context(), r, func(reply chan<- []time.Time) any { return getPaces{reply} })
		require.NoError(t, err)
		var at []time.Duration
		for _, x := range ticks {
			at = append(at, x.Sub(start))
		}
		require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, at)
		require.NoError(t, r.StopWait(t.Context()))
	})
}
