package h1

import (
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
)

// writerWait is how long a finished response waits for the body writer to
// report, before the connection is given up rather than reused: the
// backend has read the body, so the writer is only a wake-up away.
const writerWait = 50 * time.Millisecond

// copyBody writes the request body into the buffered writer: Content-Length
// bytes straight into its buffer, or chunks. flush writes each piece out as
// soon as it was read (a streamed body: the backend may be waiting for
// it). src reports that the error came from reading the body, not from the
// connection.
func (c *conn) copyBody(r *http.Request, f framing, flush bool) (err error, src bool) {
	if f.length < 0 {
		return c.copyChunked(r, flush)
	}
	bw, left := c.bw, f.length
	for left > 0 {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err, false
			}
		}
		buf := bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), left)]
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			bw.Write(buf[:n])
			left -= int64(n)
			if flush {
				if err := bw.Flush(); err != nil {
					return err, false
				}
			}
		}
		if rerr == io.EOF && left > 0 {
			return fmt.Errorf("h1: request body ended %d bytes short of its Content-Length %d", left, f.length), true
		}
		if rerr != nil && rerr != io.EOF {
			return rerr, true
		}
	}
	return nil, false
}

// chunkBuf is what one read of a chunked body may return.
const chunkBuf = 16 << 10

func (c *conn) copyChunked(r *http.Request, flush bool) (err error, src bool) {
	bp := getChunk()
	defer putChunk(bp)
	buf, bw := *bp, c.bw
	for {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
			if flush {
				if err := bw.Flush(); err != nil {
					return err, false
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr, true
		}
	}
	bw.WriteString("0\r\n")
	for k, vv := range r.Trailer { // filled in by now: the body hit EOF
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h1: invalid trailer field name %q", k), true
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("h1: invalid trailer field value for %q", k), true
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(textproto.TrimString(v))
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	return bw.Flush(), false
}

// startBodyWriter writes a streamed request body on its own goroutine
// while the caller reads the response. The goroutine owns the request
// body (it closes it) until the body ends; it reports on writeDone. A body
// that fails to read leaves a request the backend will wait on forever, so
// it closes the connection (the read then fails with that error).
func (c *conn) startBodyWriter(r *http.Request, f framing) {
	done := make(chan error, 1)
	c.writeDone = done
	c.writing.Store(true)
	go func() {
		err, src := c.copyBody(r, f, true)
		closeBody(r)
		c.wmu.Lock()
		if src {
			c.srcErr = err
		}
		if err == nil && !c.headRead && c.t.o.ResponseHeaderTimeout > 0 {
			c.nc.SetReadDeadline(time.Now().Add(c.t.o.ResponseHeaderTimeout))
		}
		c.wmu.Unlock()
		if src {
			c.raw.Close()
		}
		c.writing.Store(false)
		done <- err
	}()
}

// writerDone reports whether the body writer finished without error,
// waiting for it a little (see writerWait).
func (c *conn) writerDone() bool {
	var err error
	select {
	case err = <-c.writeDone:
	default:
		t := time.NewTimer(writerWait)
		select {
		case err = <-c.writeDone:
			t.Stop()
		case <-t.C:
			return false
		}
	}
	c.writeDone = nil
	return err == nil
}
