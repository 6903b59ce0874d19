package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// listen is the receiving end systemd would have: a unixgram socket.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) []string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	return ts.Nano() / 1000
}

func TestNotifications(t *testing.T) {
	for _, tc := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", "@lbd-sdnotify-test-" + strconv.Itoa(unix.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := listen(t, tc.socket)
			n := New(func(k string) string {
				if k == "NOTIFY_SOCKET" {
					return tc.socket
				}
				return ""
			})
			require.True(t, n.Enabled())

			require.NoError(t, n.Ready("serving\non :3030"))
			require.Equal(t, []string{"READY=1", "STATUS=serving; on :3030"}, receive(t, c))

			before := monotonicUsec(t)
			require.NoError(t, n.Reloading())
			got := receive(t, c)
			require.Len(t, got, 2)
			require.Equal(t, "RELOADING=1", got[0])
			usec, err := strconv.ParseInt(strings.TrimPrefix(got[1], "MONOTONIC_USEC="), 10, 64)
			require.NoError(t, err, got[1])
			require.GreaterOrEqual(t, usec, before)
			require.LessOrEqual(t, usec, monotonicUsec(t))

			require.NoError(t, n.Stopping())
			require.Equal(t, []string{"STOPPING=1", "STATUS=stopping"}, receive(t, c))
		})
	}
}

func TestWithoutSocketNothingIsSent(t *testing.T) {
	n := New(func(string) string { return "" })
	require.False(t, n.Enabled())
	require.NoError(t, n.Ready("x"))
	var zero *Notifier
	require.NoError(t, zero.Stopping())
}

func TestErrors(t *testing.T) {
	n := New(func(string) string { return "vsock:2:1234" })
	require.ErrorIs(t, n.Ready(""), ErrUnsupported)
	gone := New(func(string) string { return filepath.Join(t.TempDir(), "nobody-listens") })
	require.ErrorContains(t, gone.Ready(""), "sdnotify")
}
