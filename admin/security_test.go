package admin_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/lbd/lbd/admin"
	"github.com/stretchr/testify/require"
)

func TestSetTokenSwapsTheToken(t *testing.T) {
	f := newFixture(t, func(o *admin.Options) { o.Token = "s3cret" })
	status := func(auth string) int {
		var hdr []string
		if auth != "" {
			hdr = []string{"Authorization", "Bearer " + auth}
		}
		resp, _ := f.call(t, "GET", "/admin/backends", "", hdr...)
		return resp.StatusCode
	}
	steps := []struct {
		set  *string // nil: no SetToken at this step
		want map[string]int
	}{
		{nil, map[string]int{"": 401, "s3cret": 200, "n3w": 401}},
		{ptr("n3w"), map[string]int{"": 401, "s3cret": 401, "n3w": 200}},
		{ptr(""), map[string]int{"": 200, "s3cret": 200, "n3w": 200}},
		{ptr("s3cret"), map[string]int{"": 401, "s3cret": 200, "n3w": 401}},
	}
	for i, s := range steps {
		if s.set != nil {
			f.admin.SetToken(*s.set)
		}
		for auth, want := range s.want {
			require.Equal(t, want, status(auth), "step %d, token %q", i, auth)
		}
	}
	resp, _ := f.call(t, "GET", "/readyz", "")
	require.Equal(t, 200, resp.StatusCode, "probes never need one")
}

func ptr[T any](v T) *T { return &v }

func TestSetTokenWhileRequestsAreChecked(t *testing.T) {
	f := newFixture(t, func(o *admin.Options) { o.Token = "a" })
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				r := httptest.NewRequest(http.MethodGet, "/healthz/nope", nil)
				r.Header.Set("Authorization", "Bearer a")
				w := httptest.NewRecorder()
				f.admin.ServeHTTP(w, r)
				if w.Code != http.StatusNotFound && w.Code != http.StatusUnauthorized {
					t.Errorf("status %d: neither token's answer", w.Code)
					return
				}
			}
		})
	}
	for i := range 200 {
		f.admin.SetToken([]string{"a", "b"}[i%2])
	}
	wg.Wait()
}
