package proxy

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRewriteIsSetXForwarded holds rewrite, which keeps the values in the
// request's state, to what ReverseProxy's own SetXForwarded sets, with
// lbd's own headers (request id, X-Real-IP, Via) on top.
func TestRewriteIsSetXForwarded(t *testing.T) {
	cases := map[string]func(r *http.Request){
		"plain":              func(r *http.Request) {},
		"prior hops":         func(r *http.Request) { r.Header["X-Forwarded-For"] = []string{"192.0.2.1, 192.0.2.2", "192.0.2.3"} },
		"peer without port":  func(r *http.Request) { r.RemoteAddr = "203.0.113.7" },
		"tls":                func(r *http.Request) { r.TLS = &tls.ConnectionState{} },
		"client's own hosts": func(r *http.Request) { r.Header.Set("X-Forwarded-Host", "forged"); r.Host = "shop.example:8443" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			in := httptest.NewRequest(http.MethodGet, "http://shop.example/a", nil)
			in.RemoteAddr = "203.0.113.7:4711"
			mutate(in)
			st := &reqState{Context: context.Background(), id: "req-1", client: "198.51.100.2"}
			in = in.WithContext(st)
			h := &Handler{via: newVia("test")}

			want := &httputil.ProxyRequest{In: in, Out: in.Clone(context.Background())}
			want.Out.Header["X-Forwarded-For"] = in.Header["X-Forwarded-For"]
			want.SetXForwarded()
			want.Out.Header.Set("X-Request-Id", "req-1")
			want.Out.Header.Set("X-Real-IP", "198.51.100.2")
			want.Out.Header.Set("Via", "1.1 lbd-test")
			got := &httputil.ProxyRequest{In: in, Out: in.Clone(context.Background())}
			h.rewrite(got)
			require.Equal(t, want.Out.Header, got.Out.Header)
			require.Equal(t, "http", got.Out.URL.Scheme)
			require.Same(t, st, stateOf(got.In.Context()))
		})
	}
}

// TestStateContextKeepsCancellationCheap: the request state as a context
// must leave its parent recognisable to package context, or every
// context.AfterFunc under it (proxy/h1 makes one per request) would start
// a goroutine to watch it.
func TestStateContextKeepsCancellationCheap(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	st := &reqState{Context: parent}
	ctx := context.WithValue(st, struct{ k int }{1}, "like httptrace's")
	before := runtime.NumGoroutine()
	fired := make(chan struct{}, 100)
	for range 100 {
		context.AfterFunc(ctx, func() { fired <- struct{}{} })
	}
	require.Less(t, runtime.NumGoroutine()-before, 50, "no watcher goroutine per AfterFunc (100 of them)")
	require.Same(t, st, stateOf(ctx))
	cancel()
	for range 100 {
		<-fired
	}
}
