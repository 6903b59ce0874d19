package h1

import (
	"syscall"
	"time"
)

// idleCheckAfter is how long a connection must have sat idle before its
// reuse peeks at it again. A peek is a system call (~0.7 µs here, a few
// per cent of a request), and a connection back in use within this time
// is one whose backend did not close it: no server's keep-alive timeout is
// that short. Its first reuse is always checked, which catches a backend
// that closes every connection after one response without saying so.
const idleCheckAfter = 100 * time.Millisecond

// idleOK reports whether an idle connection can carry a request: the
// backend has neither closed it (a read would see EOF) nor sent anything
// since the last response (which would be read as the next one). A peek
// that would block means all is well. Without a read-loop goroutine this
// is how the pool notices a backend's own idle timeout before sending a
// request into a closed connection. TLS connections are not peeked: the
// backend may send session tickets on them at any time; a stale one fails
// at the first read and the request goes again on a new connection when
// that is safe (Transport.RoundTrip), as it does when a backend closes a
// connection between two quick uses.
func (c *conn) idleOK(idle time.Duration) bool {
	if c.rc == nil || c.peeked && idle < idleCheckAfter {
		return true
	}
	c.peeked, c.peekAlive = true, false
	if err := c.rc.Read(c.peekFn); err != nil {
		return false
	}
	return c.peekAlive
}

func (c *conn) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.peekAlive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true
}
