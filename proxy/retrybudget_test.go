package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRetryBudget(t *testing.T) {
	const now = 1_700_000_000
	cases := []struct {
		name         string
		requests     int // deposited at now, before the retries
		percent      float64
		minPerSecond int
		want         int // retries granted of 10,000 asked for at once
	}{
		{"quiet: the floor alone", 0, 20, 10, 100},
		{"no share and no floor: nothing", 1000, 0, 0, 0},
		{"20% of 1,000 requests plus the floor", 1000, 20, 10, 300},
		{"100% of 50 requests, no floor", 50, 100, 0, 50},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b retryBudget
			for range c.requests {
				b.deposit(now)
			}
			got := 0
			for range 10_000 {
				if b.withdraw(now, c.percent, c.minPerSecond) {
					got++
				}
			}
			require.Equal(t, c.want, got)
		})
	}
}

// TestRetryBudgetPaysForABurst is why the budget is a window and not a cap
// on retries in progress: a backend killed with 20 requests in flight under
// a steady 400 requests a second gets all 20 retried at once.
func TestRetryBudgetPaysForABurst(t *testing.T) {
	var b retryBudget
	for sec := int64(100); sec < 105; sec++ {
		for range 400 {
			b.deposit(sec)
		}
	}
	for i := range 20 {
		require.True(t, b.withdraw(104, 20, 10), "retry %d of the burst", i+1)
	}
}

// TestRetryBudgetBoundsAFailingPool: when every request fails, retries over
// any window stay within the share of the requests plus the floor.
func TestRetryBudgetBoundsAFailingPool(t *testing.T) {
	var b retryBudget
	granted := map[int64]int{}
	for sec := int64(1000); sec < 1060; sec++ {
		for range 500 {
			b.deposit(sec)
			if b.withdraw(sec, 20, 10) {
				granted[sec]++
			}
		}
	}
	const bound = 500*budgetWindow*20/100 + 10*budgetWindow
	sum := 0
	for end := int64(1000 + budgetWindow); end <= 1060; end++ {
		sum = 0
		for sec := end - budgetWindow; sec < end; sec++ {
			sum += granted[sec]
		}
		require.LessOrEqual(t, sum, bound, "the window ending at %d", end)
	}
	require.GreaterOrEqual(t, sum, bound*9/10, "the last window: the budget is spent, not withheld")
}

// TestRetryBudgetForgets: requests and retries older than the window no
// longer count.
func TestRetryBudgetForgets(t *testing.T) {
	var b retryBudget
	for range 1000 {
		b.deposit(10)
	}
	for b.withdraw(10, 20, 0) {
	}
	require.False(t, b.withdraw(10+budgetWindow-1, 20, 0), "still in the window: spent")
	b.deposit(10 + budgetWindow)
	require.False(t, b.withdraw(10+budgetWindow, 20, 0), "one new request: 0.2 of a retry")
	for range 4 {
		b.deposit(10 + budgetWindow)
	}
	require.True(t, b.withdraw(10+budgetWindow, 20, 0), "five new requests: one retry, the old ones forgotten")
}
