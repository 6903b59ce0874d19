package backendactor

import "time"

// The backend actor's messages, one type per intent. Commands carry an ack
// channel (buffered by actor.Ask) answered once the change is applied.
type (
	wake         struct{} // fold the sample bucket now: the breaker has something to decide
	statsReq     struct{ reply chan<- Stats }
	healthResult struct {
		ok     bool
		at     time.Time
		detail string
	}
	drain   struct{ ack chan<- error }
	undrain struct{ ack chan<- error }
	setCap  struct {
		n   int
		ack chan<- error
	}
	setWeight struct {
		w   int
		ack chan<- error
	}
	warmReset struct{ ack chan<- error }
	eject     struct {
		until  time.Time
		reason string
		ack    chan<- error
	}
	retire struct {
		deadline time.Time
		ack      chan<- error
	}
	setRules struct {
		rules Rules
		ack   chan<- error
	}
)
