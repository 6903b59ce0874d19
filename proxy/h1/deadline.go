package h1

import "time"

// The response-header timeout is a read deadline on the connection. Setting
// and clearing one costs two runtime timer updates per request (~0.8 µs on
// this machine, a few per cent of a request), so the deadline is moved only
// when it must be: it is set to fall between ResponseHeaderTimeout and
// ResponseHeaderTimeout + slack from now, and a deadline set by an earlier
// request that still falls in that window is kept. After the head it stays
// in place when the body is already buffered whole (no read will wait on the
// socket); it is cleared before any read that may wait for the body, for an
// upgraded connection, and before a streamed request, whose deadline the body
// writer sets once the body is sent. A backend thus gets at least the
// timeout, and at most the slack more.
//
// deadline is owned by the request's goroutine; the body writer never
// touches it (it sets the socket's deadline under wmu, and the reader clears
// that one after the head).

// deadlineSlack is how much later than its due time the timeout may fire.
func deadlineSlack(d time.Duration) time.Duration { return min(d/8, time.Second) }

// armHeaderTimeout makes the read deadline fall in [now+timeout,
// now+timeout+slack].
func (c *conn) armHeaderTimeout(now time.Time) {
	d := c.t.o.ResponseHeaderTimeout
	if d <= 0 {
		return
	}
	if due := now.Add(d); c.deadline.Before(due) {
		c.deadline = due.Add(deadlineSlack(d))
		c.nc.SetReadDeadline(c.deadline)
	}
}

// clearDeadline removes the read deadline, if one is set.
func (c *conn) clearDeadline() {
	if !c.deadline.IsZero() {
		c.nc.SetReadDeadline(time.Time{})
		c.deadline = time.Time{}
	}
}
