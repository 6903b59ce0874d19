package h1

import "syscall"

// idleOK reports whether an idle connection can carry a request: the
// backend has neither closed it (a read would see EOF) nor sent anything
// since the last response (which would be read as the next one). A peek
// that would block means all is well. Without a read-loop goroutine this
// is how the pool notices a backend's own idle timeout before sending a
// request into a closed connection. TLS connections are not peeked: the
// backend may send session tickets on them at any time; a stale one fails
// at the first read and the request goes again on a new connection when
// that is safe (Transport.RoundTrip).
func (c *conn) idleOK() bool {
	if c.rc == nil {
		return true
	}
	c.peekAlive = false
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
