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
	drain struct {
		cause string
		ack   chan<- error
	}
	undrain struct {
		cause string
		ack   chan<- error
	}
	setName struct {
		name string
		ack  chan<- error
	}
	setCap struct {
		n   int
		ack chan<- error
	}
	setWeight struct {
		w   int
		ack chan<- error
	}
	warmReset struct{ ack chan<- error }
	eject     struct {
		until          time.Time
		reason, detail string
		ack            chan<- error
	}
	retire struct {
		deadline time.Time
		cause    string
		ack      chan<- error
	}
	setRules struct {
		rules Rules
		ack   chan<- error
	}
)
