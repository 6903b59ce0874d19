package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRetryBudget(t *testing.T) {
	cases := []struct {
		name            string
		active, retries int64
		try             int
		wrote           bool
		want            bool
	}{
		{"quiet: the floor allows a retry", 1, 0, 1, false, true},
		{"floor of 3 concurrent retries", 5, 3, 1, false, false},
		{"20% of 100 active allows 20 retries at once", 100, 19, 1, false, true},
		{"most requests failing: the budget is spent", 100, 20, 1, false, false},
		{"beyond retries.max", 100, 0, 2, false, false},
		{"never after bytes reached the client", 100, 0, 1, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := &retryTransport{h: &Handler{}}
			tr.h.active.Store(c.active)
			tr.active.Store(c.retries)
			st := &reqState{wrote: c.wrote, settings: &PoolSettings{Retries: RetryOptions{Max: 1, BudgetPercent: 20, MinConcurrent: 3}}}
			require.Equal(t, c.want, tr.mayRetry(httptest.NewRequest(http.MethodGet, "/", nil), st, c.try))
		})
	}
}
