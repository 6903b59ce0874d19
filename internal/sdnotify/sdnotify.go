// Package sdnotify tells systemd (or anything that speaks its protocol)
// how the process is doing: READY=1, RELOADING=1, STOPPING=1 and STATUS=
// lines sent as one datagram to the unix socket named by $NOTIFY_SOCKET
// (sd_notify(3)). Without that variable a Notifier sends nothing, so lbd
// behaves the same outside systemd.
//
// It is the protocol itself, a datagram of newline-separated assignments,
// rather than github.com/coreos/go-systemd/v22/daemon: the protocol is a
// dozen lines and stable, lbd needs MONOTONIC_USEC with RELOADING=1
// (systemd 253's Type=notify-reload wants it), and the binary stays free of
// a dependency for it.
//
// cmd/lbd owns the one Notifier of the process; nothing else sends.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned for a $NOTIFY_SOCKET that is not a unix
// socket path or abstract name (systemd's vsock: addresses of VMs).
var ErrUnsupported = errors.New("sdnotify: NOTIFY_SOCKET is not a unix socket")

// Notifier sends notifications to one socket; the zero value (and a
// Notifier made without $NOTIFY_SOCKET) sends nothing.
type Notifier struct {
	socket string
}

// New returns a Notifier for $NOTIFY_SOCKET as getenv reads it.
func New(getenv func(string) string) *Notifier { return &Notifier{socket: getenv("NOTIFY_SOCKET")} }

// Enabled reports whether there is a socket to notify.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Send sends the assignments ("READY=1", "STATUS=...") as one datagram.
// A path socket starts with "/", an abstract one with "@" (Go's net
// package maps it to the leading NUL of Linux's abstract namespace).
func (n *Notifier) Send(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	if !strings.HasPrefix(n.socket, "/") && !strings.HasPrefix(n.socket, "@") {
		return fmt.Errorf("%w: %q", ErrUnsupported, n.socket)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(assignments, "\n") + "\n")); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready says the service is up (startup, or the end of a reload).
func (n *Notifier) Ready(status string) error { return n.Send("READY=1", status1(status)) }

// Reloading says a reload began; READY=1 must follow when it is over.
// MONOTONIC_USEC is CLOCK_MONOTONIC now, which systemd 253 and later use to
// match the notification to the reload they asked for.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sdnotify: monotonic clock: %w", err)
	}
	return n.Send("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000))
}

// Stopping says the service began to stop.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1", status1("stopping")) }

// status1 is a STATUS= line of one line (a newline would end it early).
func status1(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", "; ")
}
