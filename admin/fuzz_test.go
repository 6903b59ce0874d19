package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzRoutes are the admin calls that parse client input.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/admin/backends"}, {"DELETE", "/admin/backends"}, {"POST", "/admin/backend/add"},
	{"POST", "/admin/backend/remove"}, {"POST", "/admin/drain"}, {"POST", "/admin/undrain"},
	{"POST", "/admin/backend/cap"}, {"POST", "/admin/backend/weight"}, {"POST", "/admin/backend/warm-reset"},
	{"PUT", "/admin/policy"}, {"POST", "/admin/policy"}, {"POST", "/admin/canary/set"},
}

// FuzzAdminParams sends arbitrary queries and bodies to every parsing
// endpoint: no panic, and every rejection is a 4xx carrying a message.
func FuzzAdminParams(f *testing.F) {
	f.Add(uint8(0), "", `{"url":"http://127.0.0.1:9005","weight":2}`)
	f.Add(uint8(2), "url=http://[::1]:9006&weight=3&max_inflight=4", "")
	f.Add(uint8(6), "url=http://127.0.0.1:9001&max_inflight=99999999999999999999", "")
	f.Add(uint8(9), "", `{"policy":"lc","sticky":{"enabled":true,"key":"cookie:"}}`)
	f.Add(uint8(10), "name=rr&sticky=on&sticky_key=header:X", "")
	f.Add(uint8(11), "url=http://127.0.0.1:9002&percent=NaN", "")
	h := newFixture(f, nil).admin
	f.Fuzz(func(t *testing.T, route uint8, query, body string) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, "/", strings.NewReader(body))
		req.URL.Path, req.URL.RawQuery = rt.path, query
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code < 400 {
			return
		}
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s body %q: %d %s", rt.method, rt.path, query, body, w.Code, w.Body)
		}
		var e struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s?%s: %d without an error message: %s", rt.method, rt.path, query, w.Code, w.Body)
		}
		if w.Code != http.StatusBadRequest && w.Code != http.StatusNotFound && w.Code != http.StatusConflict && w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("unexpected status %d: %s", w.Code, w.Body)
		}
	})
}
