package fleet

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrUnavailable: etcd cannot be reached, so the change was refused
	// (503). The error's text is "fleet: etcd unreachable: <cause>".
	ErrUnavailable = errors.New("fleet: etcd unreachable")
	// ErrConflict: a precondition of the transaction failed (409); the
	// error is a *ConflictError naming the key.
	ErrConflict = errors.New("fleet: conflict")
	// ErrInvalidOp: the ops given to Commit cannot be a transaction.
	ErrInvalidOp = errors.New("fleet: invalid op")
)

// ReplicasPrefix is the subprefix of the replica registry, the link's own.
const ReplicasPrefix = "replicas/"

// Preconditions for Op.IfModRevision besides an exact revision.
const (
	// IfAbsent: the key must not exist.
	IfAbsent int64 = 0
	// IfAny: no precondition; the op applies whatever the key holds.
	IfAny int64 = -1
)

// KV is one key as the link hands it over. Key is relative to the prefix.
type KV struct {
	Key   string
	Value []byte
	// ModRevision is the revision of the key's last change: pass it back as
	// Op.IfModRevision to change the key only if no one else has since.
	ModRevision int64
	// CreateRevision is the revision the key was (last) created at.
	CreateRevision int64
}

// EventKind says whether an event put or deleted its key.
type EventKind uint8

// The two kinds of event.
const (
	EventPut EventKind = iota + 1
	EventDelete
)

func (k EventKind) String() string {
	switch k {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// Event is one change from the watch. For a delete, KV has the key and
// ModRevision (the revision of the delete) only.
type Event struct {
	Kind EventKind
	KV   KV
}

// Sink receives the shared state. Its methods are called by the link's
// actor goroutine, one at a time, in revision order; the link's applied
// revision moves past rev when the call returns, so a Sink that returns
// once the owner has applied the change (by asking it) makes WaitApplied
// mean "visible on this replica". A Sink must not call WaitApplied or Stop
// (it would wait for itself); Status and Commit from another goroutine are
// fine.
type Sink interface {
	// Reset replaces the whole state: kvs is every key under the prefix
	// (sorted by key, the replica registry left out) as of revision rev.
	Reset(kvs []KV, rev int64)
	// Apply hands over the changes of one revision — every event of one
	// transaction, in the transaction's order — after all earlier ones.
	Apply(rev int64, events []Event)
}

// Op is one write of a Commit: a put (Delete false) or a delete of Key,
// guarded by IfModRevision: IfAny, IfAbsent, or the ModRevision the key must
// still have.
type Op struct {
	Key           string
	Value         []byte
	Delete        bool
	IfModRevision int64
}

// Put returns an op that sets key to value if its ModRevision is still
// ifMod (IfAbsent to create, IfAny for no precondition).
func Put(key string, value []byte, ifMod int64) Op {
	return Op{Key: key, Value: value, IfModRevision: ifMod}
}

// Delete returns an op that deletes key if its ModRevision is still ifMod
// (IfAny deletes it if it exists at all).
func Delete(key string, ifMod int64) Op {
	return Op{Key: key, Delete: true, IfModRevision: ifMod}
}

// ConflictError is the ErrConflict of one key: what the op expected and
// what etcd had.
type ConflictError struct {
	Key string
	// Want is the op's IfModRevision; Got the key's ModRevision at the
	// time of the transaction (0: it did not exist).
	Want, Got int64
}

func (e *ConflictError) Error() string {
	switch {
	case e.Want == IfAbsent:
		return fmt.Sprintf("fleet: conflict on %s: it already exists (changed at revision %d)", e.Key, e.Got)
	case e.Got == 0:
		return fmt.Sprintf("fleet: conflict on %s: it was deleted since revision %d", e.Key, e.Want)
	}
	return fmt.Sprintf("fleet: conflict on %s: it was changed at revision %d since revision %d", e.Key, e.Got, e.Want)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Replica is one live replica's registration, the JSON value of
// <prefix>replicas/<name>.
type Replica struct {
	Name         string    `json:"name"`
	AdminAddress string    `json:"admin_address"`
	StartedAt    time.Time `json:"started_at"`
	Version      string    `json:"version"`
}

// Status is what GET /admin/fleet shows: this replica's link, the etcd it
// talks to, and the live replicas.
type Status struct {
	Self     SelfStatus `json:"self"`
	Etcd     EtcdStatus `json:"etcd"`
	Replicas []Replica  `json:"replicas"` // sorted by name; this one included once registered
}

// SelfStatus is this replica's side of the link.
type SelfStatus struct {
	Name string `json:"name"`
	// Connected: a session is live (listed, watching, registered), so a
	// Commit is sent to etcd.
	Connected bool `json:"connected"`
	// Synced: the state has been listed at least once since start.
	Synced bool `json:"synced"`
	// Revision is the last revision handed to the Sink.
	Revision       int64     `json:"revision"`
	ChangesApplied uint64    `json:"changes_applied"` // watch events handed over
	Resyncs        uint64    `json:"resyncs"`         // lists handed over as a Reset
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
}

// EtcdStatus names the cluster.
type EtcdStatus struct {
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix"`
}

// checkOps rejects ops etcd would refuse or that touch the registry.
func checkOps(ops []Op) error {
	if len(ops) == 0 {
		return fmt.Errorf("%w: no ops", ErrInvalidOp)
	}
	if len(ops) > maxTxnOps {
		return fmt.Errorf("%w: %d ops in one transaction; etcd takes at most %d by default", ErrInvalidOp, len(ops), maxTxnOps)
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		switch {
		case op.Key == "":
			return fmt.Errorf("%w: empty key", ErrInvalidOp)
		case strings.HasPrefix(op.Key, ReplicasPrefix):
			return fmt.Errorf("%w: %s is under %s, the replica registry", ErrInvalidOp, op.Key, ReplicasPrefix)
		case seen[op.Key]:
			return fmt.Errorf("%w: %s appears twice in one transaction", ErrInvalidOp, op.Key)
		case op.IfModRevision < IfAny:
			return fmt.Errorf("%w: %s: IfModRevision %d (want -1, 0 or a revision)", ErrInvalidOp, op.Key, op.IfModRevision)
		case op.Delete && op.IfModRevision == IfAbsent:
			return fmt.Errorf("%w: %s: a delete that requires the key to be absent does nothing", ErrInvalidOp, op.Key)
		}
		seen[op.Key] = true
	}
	return nil
}

// maxTxnOps is etcd's default --max-txn-ops.
const maxTxnOps = 128
