//go:build !linux

package h1

import "time"

// idleOK cannot peek at the socket here; a connection the backend closed
// fails at the first read and the request goes again on a new connection
// when that is safe (Transport.RoundTrip).
func (c *conn) idleOK(time.Duration) bool { return true }

func (c *conn) peek(uintptr) bool { return true }
