package discovery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSchedule(t *testing.T) {
	s := schedule{refresh: 10 * time.Second, floor: time.Second, jitter: 0.1}
	ticked := schedule{refresh: 10 * time.Second, floor: time.Second, jitter: 0.1, tick: 100 * time.Millisecond}
	for _, tc := range []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"no TTL: refresh", s.afterAnswer(ttl{}, 0), 10 * time.Second},
		{"TTL below refresh", s.afterAnswer(ttlOf(4), 0), 4 * time.Second},
		{"TTL above refresh", s.afterAnswer(ttlOf(3600), 0), 10 * time.Second},
		{"TTL 0: the floor", s.afterAnswer(ttlOf(0), 0), time.Second},
		{"full jitter takes 10% off", s.afterAnswer(ttl{}, 0.999999), 9*time.Second + time.Microsecond},
		{"half jitter", s.afterAnswer(ttlOf(4), 0.5), 3800 * time.Millisecond},
		{"jitter never goes under the floor", s.afterAnswer(ttlOf(1), 0.99), time.Second},
		{"a tick early, so the tick after it is due is not late", ticked.afterAnswer(ttlOf(4), 0), 3900 * time.Millisecond},
		{"refresh a tick early too", ticked.afterAnswer(ttl{}, 0), 9900 * time.Millisecond},
		{"the floor still wins", ticked.afterAnswer(ttlOf(1), 0), time.Second},
		{"failures are not early: backoff is a lower bound", ticked.afterFailure(2, 0), 2 * time.Second},
		{"first failure: the floor", s.afterFailure(1, 0), time.Second},
		{"second: doubled", s.afterFailure(2, 0), 2 * time.Second},
		{"fourth", s.afterFailure(4, 0), 8 * time.Second},
		{"capped at refresh", s.afterFailure(5, 0), 10 * time.Second},
		{"a long outage stays capped", s.afterFailure(1000, 0), 10 * time.Second},
		{"backoff is jittered too", s.afterFailure(4, 0.5), 7600 * time.Millisecond},
	} {
		require.Equal(t, tc.want, tc.got, tc.name)
	}
	tight := schedule{refresh: time.Second, floor: time.Second, jitter: 0.1}
	require.Equal(t, time.Second, tight.afterFailure(3, 0.9), "refresh at the floor: every second, failing or not")
}

func TestTTLMin(t *testing.T) {
	require.Equal(t, ttl{}, ttl{}.min(ttl{}))
	require.Equal(t, ttlOf(5), ttl{}.min(ttlOf(5)))
	require.Equal(t, ttlOf(5), ttlOf(5).min(ttl{}))
	require.Equal(t, ttlOf(0), ttlOf(5).min(ttlOf(0)))
}
