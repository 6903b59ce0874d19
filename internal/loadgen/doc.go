// Package loadgen is a bounded HTTP load generator for lbd scenarios, used
// in-process by tests and scenario code (Run) and by the lbd-load command.
//
// Two modes:
//
//   - closed loop: Concurrency workers each send the next request as soon as
//     the previous one finished, so the offered load adapts to the server;
//   - open loop: requests arrive at Rate per second whatever the server does,
//     which is how overload really looks. At most MaxOutstanding requests are
//     in flight; an arrival that finds the cap reached is dropped and counted,
//     so a stalled server cannot make the generator grow without bound.
//
// Every run is bounded twice: by N requests and by Duration, whichever comes
// first (plus at most one per-request Timeout for the stragglers). Targets
// must be loopback (127.0.0.0/8, ::1 or localhost); the dialer re-checks the
// resolved address, so a name cannot smuggle traffic off the machine.
//
// The Result counts statuses, X-Lbd-Reject reasons, X-Backend values
// (distribution across backends) and transport errors, and summarises
// latency in a fixed-size log-bucketed histogram (about 1.6% precision).
package loadgen
