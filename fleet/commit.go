package fleet

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Commit writes ops as one etcd transaction, each guarded by its
// IfModRevision, and returns the revision it committed at. It does not
// touch this replica's state: the change comes back through the watch, as
// on every replica (WaitApplied(ctx, rev) waits for that).
//
// A failed precondition is a *ConflictError (errors.Is ErrConflict) for the
// first op whose key had moved; nothing was written. Without a live session
// it returns ErrUnavailable at once, without sending anything; a commit
// that was sent but not answered in time is ErrUnavailable too, with an
// unknown outcome (see the package doc).
func (l *Link) Commit(ctx context.Context, ops ...Op) (int64, error) {
	if err := checkOps(ops); err != nil {
		l.metrics.commit("invalid")
		return 0, err
	}
	cli := l.live.Load()
	if cli == nil {
		l.metrics.commit("unavailable")
		return 0, l.unavailable(nil)
	}
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), l.opts.RequestTimeout)
	defer cancel()
	resp, err := l.txn(ops)(ctx, cli)
	if err != nil {
		if isUnavailable(err) {
			l.metrics.commit("unavailable")
			return 0, l.unavailable(err)
		}
		l.metrics.commit("error")
		return 0, fmt.Errorf("fleet: commit: %w", err)
	}
	if !resp.Succeeded {
		l.metrics.commit("conflict")
		return 0, conflict(ops, resp)
	}
	l.metrics.commit("ok")
	return resp.Header.Revision, nil
}

// txn builds the transaction of ops: If every guarded key still has its
// ModRevision, Then every op, Else read the guarded keys back to name the
// one that moved.
func (l *Link) txn(ops []Op) func(context.Context, *clientv3.Client) (*clientv3.TxnResponse, error) {
	prefix := l.opts.Etcd.Prefix
	var conds []clientv3.Cmp
	var then, orElse []clientv3.Op
	for _, op := range ops {
		key := prefix + op.Key
		if op.IfModRevision != IfAny {
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(key), "=", op.IfModRevision))
			orElse = append(orElse, clientv3.OpGet(key, clientv3.WithKeysOnly()))
		}
		if op.Delete {
			then = append(then, clientv3.OpDelete(key))
		} else {
			then = append(then, clientv3.OpPut(key, string(op.Value)))
		}
	}
	return func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(conds...).Then(then...).Else(orElse...).Commit()
	}
}

// conflict names the first guarded op whose key no longer matches.
func conflict(ops []Op, resp *clientv3.TxnResponse) error {
	var guarded []Op
	for _, op := range ops {
		if op.IfModRevision != IfAny {
			guarded = append(guarded, op)
		}
	}
	for i, op := range guarded {
		var got int64
		if r := resp.Responses[i].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			got = r.Kvs[0].ModRevision
		}
		if got != op.IfModRevision {
			return &ConflictError{Key: op.Key, Want: op.IfModRevision, Got: got}
		}
	}
	// Every key matched when read back: a later transaction moved one and
	// another moved it back within the gap, which etcd revisions rule out;
	// name the first key so the caller still answers 409.
	return &ConflictError{Key: guarded[0].Key, Want: guarded[0].IfModRevision, Got: guarded[0].IfModRevision}
}

// unavailable is ErrUnavailable with the cause: err, or the session's last
// failure when nothing was sent.
func (l *Link) unavailable(err error) error {
	if err == nil {
		if p := l.lastErr.Load(); p != nil && *p != nil {
			err = *p
		} else {
			err = errors.New("not connected yet")
		}
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// isUnavailable tells the errors that mean "etcd could not be reached or
// had no leader" from the ones etcd answered (permission denied, too many
// ops...), which are errors of the request.
func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	switch rpctypes.Error(err) {
	case rpctypes.ErrNoLeader, rpctypes.ErrNotCapable, rpctypes.ErrStopped, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrUnhealthy:
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}
