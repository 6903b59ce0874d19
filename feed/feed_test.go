package feed

import (
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func itoa(n int) []byte { return []byte(strconv.Itoa(n)) }

func TestHubFiltersEncodesOnceAndDrops(t *testing.T) {
	h := New[int]()
	require.False(t, h.Listening())
	encodes := 0
	enc := func(n int) []byte { encodes++; return itoa(n) }
	require.Equal(t, 0, h.Publish(1, enc))
	require.Equal(t, 0, encodes, "no subscriber: nothing is encoded")

	even, err := h.Subscribe(func(n int) bool { return n%2 == 0 }, 2)
	require.NoError(t, err)
	all, err := h.Subscribe(nil, 8)
	require.NoError(t, err)
	require.True(t, h.Listening())
	require.Equal(t, 2, h.Listeners())

	for i := range 6 {
		h.Publish(i, enc)
	}
	require.Equal(t, 6, encodes, "one encoding per event, however many subscribers take it")
	for range 3 { // odd: only all wants them, and it has room for two
		h.Publish(1, enc)
	}
	require.Equal(t, 8, encodes, "the third found every taker full: not encoded")
	require.Equal(t, uint64(1), all.Dropped())
	require.Equal(t, []byte("0"), <-even.C())
	require.Equal(t, []byte("2"), <-even.C())
	require.Equal(t, uint64(1), even.Dropped(), "4 found the buffer of 2 full")
	require.Equal(t, uint64(2), h.Dropped(), "one each")
	for i := range 6 {
		require.Equal(t, itoa(i), <-all.C())
	}
	require.Equal(t, itoa(1), <-all.C())
	require.Equal(t, itoa(1), <-all.C())
	require.Equal(t, uint64(10), h.Sent())
	require.True(t, h.Wants(3))

	even.Close()
	require.Equal(t, 1, h.Listeners())
	<-even.Done()
	h.Close()
	<-all.Done()
	require.False(t, h.Listening())
	_, err = h.Subscribe(nil, 1)
	require.ErrorIs(t, err, ErrClosed)
}

// Publishers and subscribers that come and go at once: the race detector
// judges the lock-free list.
func TestHubConcurrent(t *testing.T) {
	h := New[int]()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				h.Publish(p*10000+i, itoa)
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 50 {
				s, err := h.Subscribe(nil, 4)
				if err != nil {
					return
				}
				select {
				case <-s.C():
				default:
				}
				s.Close()
			}
		})
	}
	wg.Wait()
	h.Close()
	require.Equal(t, 0, h.Listeners())
}
