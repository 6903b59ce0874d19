package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOutliersHandler(t *testing.T) {
	report := map[string]any{"enabled": true, "ejected": []map[string]any{{"url": "http://a:1", "reason": "success_rate"}}}
	s := New(Options{})
	s.Handle(OutliersPath, OutliersHandler(func() any { return report }))

	cases := []struct {
		method string
		status int
		check  func(t *testing.T, body map[string]any)
	}{
		{http.MethodGet, http.StatusOK, func(t *testing.T, body map[string]any) {
			require.Equal(t, true, body["enabled"])
			require.Len(t, body["ejected"], 1)
		}},
		{http.MethodPost, http.StatusMethodNotAllowed, func(t *testing.T, body map[string]any) {
			require.Contains(t, body["error"], "only GET")
		}},
		{http.MethodDelete, http.StatusMethodNotAllowed, nil},
	}
	for _, c := range cases {
		t.Run(c.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(c.method, OutliersPath, nil))
			require.Equal(t, c.status, rec.Code)
			require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			var body map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			if c.check != nil {
				c.check(t, body)
			}
		})
	}
}
