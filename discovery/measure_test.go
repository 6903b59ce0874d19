//go:build unix

package discovery

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

var (
	measure     = flag.Int("measure.refreshes", 0, "TestMeasureRefreshCost: refreshes to run on synctest's clock and report (e.g. 1000); 0 runs a short leak check")
	measureReal = flag.Duration("measure.real", 0, "TestMeasureRefreshCost: also run this long on the real clock (e.g. 60s) and report CPU % of one core")
)

// cpuTime is the process's user+system CPU time so far: everything in it,
// the test DNS server's work included.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMeasureRefreshCost: a source of 100 SRV members (whose answer needs
// TCP: it exceeds 1232 bytes) refreshed every second, one member's port
// changing every 10th refresh so that deliveries happen too. It reports
// CPU per window of 100 refreshes and the goroutine count, which must not
// grow. Timing is reported, never asserted:
//
//	go test -run TestMeasureRefreshCost -v -measure.refreshes=1000 -measure.real=60s ./discovery/
func TestMeasureRefreshCost(t *testing.T) {
	refreshes := *measure
	if refreshes == 0 {
		refreshes = 50
	}
	const members = 100
	z := startDNS(t)
	setSRVMembers(t, z, api, members)
	src := refreshEvery(time.Second, srvSource(api, z.addr))
	baseline := ownGoroutines()
	var delivered atomic.Int64
	apply := func(_ context.Context, u Update) error {
		if len(u.Members) != members {
			return fmt.Errorf("got %d members, want %d", len(u.Members), members)
		}
		delivered.Add(1)
		return nil
	}
	change := func(i int) { // one member's port flips every 10th refresh
		z.set(api, dns.TypeSRV, srvRecords(api, members, i/10%2)...)
	}

	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{Source: src, Apply: apply, Logger: quietLog, Jitter: -1})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Stop(context.Background()) }) // when a require fails inside the bubble
		advance(DefaultTickEvery)                              // the first lookup
		window := min(100, refreshes)
		var goroutines []int
		for done := 0; done < refreshes; done += window {
			cpu0 := cpuTime(t)
			for i := range window {
				if (done+i)%10 == 0 {
					change(done + i)
				}
				advance(time.Second)
			}
			cpu := cpuTime(t) - cpu0
			goroutines = append(goroutines, ownGoroutines())
			if *measure > 0 {
				t.Logf("refreshes %4d-%4d: CPU %v = %.3f%% of one core at 1 refresh/s (%v per refresh), goroutines %d",
					done+1, done+window, cpu.Round(time.Microsecond), 100*cpu.Seconds()/float64(window),
					(cpu / time.Duration(window)).Round(time.Microsecond), goroutines[len(goroutines)-1])
			}
		}
		st := s.Status()
		require.Equal(t, uint64(refreshes+1), st.Lookups, "one lookup per second")
		require.Equal(t, members, st.MemberCount)
		require.Zero(t, st.ConsecutiveFailures)
		require.Equal(t, int64(1+(refreshes-1)/10), delivered.Load(), "the first set, then one per change (at the 10th, 20th... refresh)")
		for _, g := range goroutines {
			require.Equal(t, goroutines[0], g, "goroutines do not grow: %v", goroutines)
		}
		require.NoError(t, s.Stop(context.Background()))
	})
	if ownGoroutines() > baseline {
		buf := make([]byte, 1<<20)
		t.Fatalf("after Stop %d goroutines, want %d:\n%s", ownGoroutines(), baseline, buf[:runtime.Stack(buf, true)])
	}
	if *measure > 0 {
		t.Logf("goroutines (the DNS server's left out): %d before start, %d after Stop", baseline, ownGoroutines())
	}

	if *measureReal > 0 {
		s, err := New(Config{Source: src, Apply: apply, Logger: quietLog})
		require.NoError(t, err)
		cpu0, wall0 := cpuTime(t), time.Now()
		time.Sleep(*measureReal) // a measurement of a stretch of real time, not a wait for a state
		cpu, wall := cpuTime(t)-cpu0, time.Since(wall0)
		st := s.Status()
		require.NoError(t, s.Stop(context.Background()))
		t.Logf("real clock: %d lookups in %v, CPU %v = %.3f%% of one core, goroutines %d (baseline %d)",
			st.Lookups, wall.Round(time.Millisecond), cpu.Round(time.Microsecond), 100*cpu.Seconds()/wall.Seconds(),
			ownGoroutines(), baseline)
	}
}

// srvRecords are n SRV records for name; flip changes the first one's port.
func srvRecords(name string, n, flip int) []string {
	out := make([]string, n)
	for i := range n {
		port := 8000 + i
		if i == 0 {
			port += 1000 * flip
		}
		out[i] = fmt.Sprintf("%s 60 IN SRV 1 1 %d node-%03d.node.dc1.consul.", name, port, i)
	}
	return out
}

// BenchmarkLookupSRV100 is one lookup of 100 SRV members with their
// addresses in the additional section (UDP truncated, then TCP) against the
// in-process server, whose work is in the figures too:
//
//	go test -run XXX -bench LookupSRV100 -benchmem ./discovery/
func BenchmarkLookupSRV100(b *testing.B) {
	z := startDNS(b)
	setSRVMembers(b, z, api, 100)
	c := testClient(z.addr)
	src := srvSource(api, z.addr)
	b.ReportAllocs()
	for b.Loop() {
		out, err := c.lookup(b.Context(), src)
		if err != nil || len(out.members) != 100 {
			b.Fatalf("lookup: %d members, %v", len(out.members), err)
		}
	}
}

// ownGoroutines counts the process's goroutines but the test DNS server's,
// whose per-query goroutines come and go on their own schedule.
func ownGoroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "github.com/miekg/dns.") {
			n++
		}
	}
	return n
}
