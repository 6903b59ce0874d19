package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// stateWriter is the actor that owns the state file: writes are serialised
// in its mailbox, and each one records the settings as they are when it
// runs, so a burst of changes ends with the last one on disk.
//
// Each Persist call takes a number after its change was applied; a write
// notes the last number taken before it reads the settings, so it covers
// every call up to that number, and those calls still queued are answered
// without writing again: a burst of N changes costs a write or two, not N
// fsyncs in a row.
type stateWriter struct {
	path  string
	sched *scheduler.Scheduler
	// file returns the config file as last applied, recorded in the state
	// so that a restart can tell the file's later edits (state.go).
	file   func() *config.Config
	log    *slog.Logger
	ref    *actor.Ref
	writes *prometheus.CounterVec // lbd_state_file_writes_total{result}

	asked   atomic.Uint64 // numbers handed to Persist calls (the only field callers touch)
	durable uint64        // the actor's: the last number a successful write covered
}

// persistReq asks for a write covering call n; the reply says whether it is durable.
type persistReq struct {
	n     uint64
	reply chan<- error
}

// startStateWriter spawns the writer and registers its counter on prom (a
// registry of its own App: the name is free).
func startStateWriter(reg *actor.Registry, prom prometheus.Registerer, path string, sched *scheduler.Scheduler, file func() *config.Config, log *slog.Logger) *stateWriter {
	w := &stateWriter{path: path, sched: sched, file: file, log: log}
	w.writes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_state_file_writes_total",
		Help: "Writes of the state file after admin changes and reloads, by result (success or failure).",
	}, []string{"result"})
	w.writes.WithLabelValues("success")
	w.writes.WithLabelValues("failure")
	prom.MustRegister(w.writes)
	w.ref = actor.Spawn(reg, w, actor.Options{Name: "state-writer", Kind: "state", Mailbox: 64, Logger: log})
	return w
}

// Receive is the writer's table of contents: one message, at most one write.
func (w *stateWriter) Receive(msg any) {
	switch m := msg.(type) {
	case persistReq:
		if m.n <= w.durable { // a write since this call's change has it
			m.reply <- nil
			return
		}
		m.reply <- w.write()
	default:
		w.log.Warn("state writer: unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

func (w *stateWriter) write() error {
	covered := w.asked.Load() // before the read: every call so far had its change applied
	err := w.writeNow()
	if err != nil {
		w.writes.WithLabelValues("failure").Inc()
		return err
	}
	w.writes.WithLabelValues("success").Inc()
	w.durable = covered
	return nil
}

func (w *stateWriter) writeNow() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := currentState(ctx, w.sched, w.file())
	if err != nil {
		return fmt.Errorf("state_file %s: reading the settings: %w", w.path, err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(w.path, append(data, '\n')); err != nil {
		return fmt.Errorf("state_file %s: %w", w.path, err)
	}
	w.ref.SetState(fmt.Sprintf("wrote %d backends at %s", len(st.Backends), time.Now().UTC().Format(time.RFC3339)))
	return nil
}

// Persist writes the current settings and returns once they are on disk.
// Call it after the change is applied.
func (w *stateWriter) Persist(ctx context.Context) error {
	n := w.asked.Add(1)
	err, askErr := actor.Ask(ctx, w.ref, func(r chan<- error) any { return persistReq{n, r} })
	if askErr != nil {
		return askErr
	}
	return err
}

// Stop stops the writer; a write in hand completes first.
func (w *stateWriter) Stop(ctx context.Context) error { return w.ref.StopWait(ctx) }
