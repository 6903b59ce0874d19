package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRetryBudget(t *testing.T) {
	cases := []struct {
		name            string
		active, retries int64
		want            bool
	}{
		{"quiet: the floor allows a retry", 1, 0, true},
		{"floor of 3 concurrent retries", 5, 3, false},
		{"20% of 100 active allows 20 retries at once", 100, 19, true},
		{"most requests failing: the budget is spent", 100, 20, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := &retryTransport{h: &Handler{}}
			tr.h.active.Store(c.active)
			tr.active.Store(c.retries)
			require.Equal(t, c.want, tr.withinBudget(&RetryOptions{Max: 1, BudgetPercent: 20, MinConcurrent: 3}))
		})
	}
}
