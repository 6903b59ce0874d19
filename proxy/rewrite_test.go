package proxy

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRewriteIsSetXForwarded holds rewrite, which keeps the values in the
// request's state, to what ReverseProxy's own SetXForwarded sets.
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
			st := &reqState{Context: context.Background()}
			in = in.WithContext(st)

			want := &httputil.ProxyRequest{In: in, Out: in.Clone(context.Background())}
			want.Out.Header["X-Forwarded-For"] = in.Header["X-Forwarded-For"]
			want.SetXForwarded()
			got := &httputil.ProxyRequest{In: in, Out: in.Clone(context.Background())}
			rewrite(got)
			require.Equal(t, want.Out.Header, got.Out.Header)
			require.Equal(t, "http", got.Out.URL.Scheme)
			require.Same(t, st, stateOf(got.In.Context()))
		})
	}
}
