package proxy

import "sync/atomic"

// budgetWindow is how many seconds of requests and retries the retry budget
// remembers: Finagle's and linkerd's default TTL.
const budgetWindow = 10

// retryBudget bounds the retries that add load by the traffic of the last
// budgetWindow seconds, as Finagle's RetryBudget and linkerd's retry budget
// do: a retry may go out when, with it, the window's retries are at most
//
//	percent/100 × requests in the window + minPerSecond × budgetWindow
//
// A backend that dies with requests in flight costs a burst of retries as
// large as that count, once; the window's balance pays for it. A pool where
// everything fails spends the balance within a few seconds and then retries at
// most percent of its requests: the load retries add stays bounded. (A cap on
// retries in progress, as Envoy's budget is, refused that burst: with 16
// clients its floor of 3 turned a fourth simultaneous reset into a 502.)
//
// The counts are per second, in a ring of atomics: a request costs one
// atomic add. A slot is reset by the first caller of a new second; a count
// that lands in between is lost, which leaves the budget approximate by a
// request or two at a second's turn, never unbounded.
type retryBudget struct {
	slots [budgetWindow]budgetSlot
}

type budgetSlot struct {
	second            atomic.Int64 // the Unix second the counts are of
	requests, retries atomic.Int64
}

// slot is the slot of the Unix second now, reset if it held an older one.
func (b *retryBudget) slot(now int64) *budgetSlot {
	s := &b.slots[now%budgetWindow]
	if sec := s.second.Load(); sec != now && s.second.CompareAndSwap(sec, now) {
		s.requests.Store(0)
		s.retries.Store(0)
	}
	return s
}

// deposit counts a request that reached the transport at Unix second now.
func (b *retryBudget) deposit(now int64) { b.slot(now).requests.Add(1) }

// withdraw takes one retry from the budget at Unix second now, if the
// window has one left. The retry is counted before the check and given back
// if it did not fit, so that concurrent withdrawals cannot overdraw.
func (b *retryBudget) withdraw(now int64, percent float64, minPerSecond int) bool {
	cur := b.slot(now)
	taken := cur.retries.Add(1)
	requests, retries := cur.requests.Load(), taken
	for i := range b.slots {
		s := &b.slots[i]
		if s == cur {
			continue
		}
		if sec := s.second.Load(); sec > now-budgetWindow && sec <= now {
			requests += s.requests.Load()
			retries += s.retries.Load()
		}
	}
	if float64(retries) > float64(requests)*percent/100+float64(max(minPerSecond, 0)*budgetWindow) {
		cur.retries.Add(-1)
		return false
	}
	return true
}
