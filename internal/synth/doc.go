// Package synth is a synthetic HTTP backend for exercising lbd: a handler
// whose latency, jitter, error rate, hang rate, health status and body size
// are knobs that can be turned while it runs.
//
// Tests mount a Server in-process (New and ServeHTTP, or Start for a real
// loopback listener), `lbd -demo` starts three of them, and cmd/lbd-backend
// wraps one in a binary. Scenario scripts turn a running backend slow or
// flaky with GET/PUT /_knobs.
//
// Paths:
//
//	/healthz       answers Knobs.HealthStatus, never delayed
//	/_knobs        GET the knobs as JSON; PUT a JSON object to change some of them
//	/sse?n=5&every=10ms  streams n server-sent events, flushing each one
//	/echo          streams the request body back as it arrives
//	/status/NNN    answers status NNN
//	anything else  waits Latency ± Jitter, then answers Size bytes with 200, or
//	               ErrorStatus with probability ErrorRate; with probability
//	               HangRate it never answers until the client goes away or the
//	               server closes
//
// Every response carries X-Backend (the knob Name) and echoes what the proxy
// sent: X-Seen-Request-Id, X-Seen-Forwarded-For, X-Seen-Forwarded-Host,
// X-Seen-Forwarded-Proto, X-Seen-Traceparent, X-Seen-Method, X-Seen-Path and
// X-Seen-Proto.
//
// Waiting always ends when the request's context ends or the server closes,
// so closing a Running server leaves no goroutine behind.
package synth
