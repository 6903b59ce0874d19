package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// pattern is an endless, allocation-free source of upload bytes.
type pattern struct{ i byte }

func (p *pattern) Read(b []byte) (int, error) {
	for k := range b {
		b[k] = p.i
		p.i = p.i*31 + 7
	}
	return len(b), nil
}

// gatedUpload stops after `at` bytes until `open` is closed: the test opens
// it once echoed bytes reach the client, which can only happen before the
// upload ends if both bodies stream.
type gatedUpload struct {
	r    io.Reader
	sent int64
	at   int64
	open <-chan struct{}
}

func (g *gatedUpload) Read(b []byte) (int, error) {
	if g.sent >= g.at {
		select {
		case <-g.open:
		case <-time.After(20 * time.Second):
			return 0, errors.New("upload stalled: no echo reached the client while the upload was under way, so a body was buffered whole")
		}
	}
	if g.sent < g.at { // stop exactly at the gate
		b = b[:min(int64(len(b)), g.at-g.sent)]
	}
	n, err := g.r.Read(b)
	g.sent += int64(n)
	return n, err
}

// heapPeak samples the heap's object bytes until stop is closed and returns
// the highest value seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var peak uint64
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// TestLargeBodiesStreamBothWays sends a body of unknown length (chunked, or
// HTTP/2 DATA frames) through lbd to the backend's /echo, which writes it
// back as it reads. The upload pauses half way until echoed bytes have come
// back, so a proxy that held either body whole deadlocks (and fails), and
// the heap must stay well under the body's size meanwhile.
func TestLargeBodiesStreamBothWays(t *testing.T) {
	const size = 32 << 20
	cases := []struct {
		name     string
		protocol string // upstream
		h2c      bool   // client to lbd
		expect   bool   // the client sends Expect: 100-continue
	}{
		{"HTTP/1.1 chunked to an http1 backend", "http1", false, false},
		{"HTTP/1.1 with Expect: 100-continue", "http1", false, true},
		{"h2c to an h2c backend", "h2c", true, false},
		{"HTTP/1.1 to an h2c backend", "h2c", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			backends := startBackends(t, synth.Knobs{Name: "a"})
			l := startLBD(t, backends, func(cfg *config.Config) {
				cfg.H2C = c.h2c
				cfg.Backends[0].Protocol = c.protocol
			})
			tr := &http.Transport{Protocols: new(http.Protocols), ExpectContinueTimeout: time.Minute}
			tr.Protocols.SetHTTP1(!c.h2c)
			tr.Protocols.SetUnencryptedHTTP2(c.h2c)
			t.Cleanup(tr.CloseIdleConnections)

			echoed := make(chan struct{})
			want := sha256.New()
			upload := &gatedUpload{r: io.TeeReader(io.LimitReader(&pattern{}, size), want), at: size / 2, open: echoed}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/echo", io.NopCloser(upload))
			require.NoError(t, err)
			req.ContentLength = -1 // no length known up front
			if c.expect {
				req.Header.Set("Expect", "100-continue") // the client waits for lbd's 100 before sending
			}

			runtime.GC()
			stop := make(chan struct{})
			var base uint64
			{
				s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
				metrics.Read(s)
				base = s[0].Value.Uint64()
			}
			peak := heapPeak(stop)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			require.NoError(t, err)
			got := sha256.New()
			var n atomic.Int64
			_, err = io.Copy(io.MultiWriter(got, countTo(&n, 1<<20, echoed)), resp.Body)
			close(stop)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())

			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, int64(size), n.Load())
			require.Equal(t, want.Sum(nil), got.Sum(nil), "the echo is the upload, byte for byte")
			grew := int64(<-peak) - int64(base)
			t.Logf("heap peak grew by %.1f MiB (client, lbd and backend in one process) for a %d MiB round trip", float64(grew)/(1<<20), size>>20)
			require.Less(t, grew, int64(size*3/4), "bodies must stream, not be held whole")
		})
	}
}

// countTo counts bytes into n and closes reached once n passes at.
func countTo(n *atomic.Int64, at int64, reached chan struct{}) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if v := n.Add(int64(len(p))); v >= at && v-int64(len(p)) < at {
			close(reached)
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
