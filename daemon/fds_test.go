package daemon

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestConnectionCapKeepsDescriptorsForTheRest(t *testing.T) {
	cases := []struct {
		configured int
		nofile     uint64
		want       int
		lowered    bool
	}{
		{10_000, 0, 10_000, false},       // unlimited descriptors
		{10_000, 1 << 20, 10_000, false}, // plenty
		{10_000, 20_000, 9_936, true},    // (20000 - 128) / 2
		{10_000, 1024, 448, true},        // the attack's 1,024: idle connections cannot take them all
		{100, 1024, 100, false},          // below what fits
		{0, 1024, 448, true},             // no cap of its own: the descriptors still bound it
		{10_000, 200, 1, true},           // a limit too small for the reserve still accepts one
	}
	for _, c := range cases {
		got, lowered := connectionCap(c.configured, c.nofile)
		require.Equal(t, c.want, got, "%d with %d descriptors", c.configured, c.nofile)
		require.Equal(t, c.lowered, lowered)
	}
}

func TestFDLimitIsTheHardLimit(t *testing.T) {
	n := fdLimit()
	var r unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &r))
	require.Equal(t, r.Max, r.Cur, "the soft limit is raised to the hard one")
	if r.Cur != unix.RLIM_INFINITY {
		require.Equal(t, r.Cur, n)
	}
}
