package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/lbd/lbd/actor"
	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/scheduler"
)

// stateWriter is the actor that owns the state file: writes are serialised
// in its mailbox, and each one records the settings as they are when it
// runs, so a burst of changes ends with the last one on disk.
type stateWriter struct {
	path  string
	sched *scheduler.Scheduler
	// file returns the config file as last applied, recorded in the state
	// so that a restart can tell the file's later edits (state.go).
	file func() *config.Config
	log  *slog.Logger
	ref  *actor.Ref
}

// persistReq asks for a write; the reply says whether it is durable.
type persistReq struct{ reply chan<- error }

func startStateWriter(reg *actor.Registry, path string, sched *scheduler.Scheduler, file func() *config.Config, log *slog.Logger) *stateWriter {
	w := &stateWriter{path: path, sched: sched, file: file, log: log}
	w.ref = actor.Spawn(reg, w, actor.Options{Name: "state-writer", Kind: "state", Mailbox: 64, Logger: log})
	return w
}

// Receive is the writer's table of contents: one message, one write.
func (w *stateWriter) Receive(msg any) {
	switch m := msg.(type) {
	case persistReq:
		m.reply <- w.write()
	default:
		w.log.Warn("state writer: unknown message", "type", fmt.Sprintf("%T", msg))
	}
}

func (w *stateWriter) write() error {
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
func (w *stateWriter) Persist(ctx context.Context) error {
	err, askErr := actor.Ask(ctx, w.ref, func(r chan<- error) any { return persistReq{r} })
	if askErr != nil {
		return askErr
	}
	return err
}

// Stop stops the writer; a write in hand completes first.
func (w *stateWriter) Stop(ctx context.Context) error { return w.ref.StopWait(ctx) }
