package proxy

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// deadlineWriter records the deadlines a ResponseController sets on it.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	reads, writes atomic.Int32
}

func (d *deadlineWriter) SetReadDeadline(time.Time) error  { d.reads.Add(1); return nil }
func (d *deadlineWriter) SetWriteDeadline(time.Time) error { d.writes.Add(1); return nil }

func TestStallWatchCutsOnlyAPendingOperation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rw := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
		w := &stallWatch{limit: time.Second, base: time.Now(), rw: rw}

		w.begin() // a read that completes in time
		time.Sleep(900 * time.Millisecond)
		w.end()
		time.Sleep(10 * time.Second) // idle between reads: the backend is slow to ask for more
		synctest.Wait()
		require.Zero(t, rw.reads.Load(), "time without a pending read is not a stall")

		w.begin() // a read the client never answers
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		require.Zero(t, rw.reads.Load(), "not yet")
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		require.EqualValues(t, 1, rw.reads.Load(), "cut once the read waited a whole client_stall")
		require.True(t, w.stalled.Load())
		w.stop()
	})
}

func TestStallWatchStopsBeforeTheHandlerReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rw := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
		w := &stallWatch{limit: time.Second, base: time.Now(), rw: rw, write: true}
		w.begin()
		w.stop()
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Zero(t, rw.writes.Load(), "a stopped watch never touches the finished response")
	})
}

func TestStallWatchOff(t *testing.T) {
	w := &stallWatch{}
	w.begin()
	w.end()
	w.stop()
	require.Nil(t, w.timer, "client_stall 0 arms nothing")
}

func TestHTTP2WritesAreWatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rw := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
		st := &reqState{ResponseWriter: rw, start: time.Now()}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.ProtoMajor = 2
		st.watchWrites(r, time.Second)
		st.writes.begin() // a write that HTTP/2 flow control holds
		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.EqualValues(t, 1, rw.writes.Load())
		st.stopWatches()
	})
}
