package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// registration is this replica's key under replicas/, kept alive by a lease.
type registration struct {
	cli       *clientv3.Client
	id        clientv3.LeaseID
	keepalive <-chan *clientv3.LeaseKeepAliveResponse // closed when the lease is lost
}

// register grants a lease, puts this replica's key on it and keeps it
// alive for as long as ctx lasts. Each session registers afresh: after an
// etcd restart or a partition longer than the TTL the old lease is gone,
// and after a short one the put moves the key to the new lease while the
// old one expires holding nothing.
func (ss *session) register(ctx context.Context, cli *clientv3.Client) (*registration, error) {
	o := ss.link.opts
	value, err := json.Marshal(Replica{
		Name: o.Name, AdminAddress: o.AdminAddress, StartedAt: ss.link.started, Version: o.Version,
	})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
	defer cancel()
	ttl := max(1, int64((o.LeaseTTL+time.Second-1)/time.Second))
	lease, err := cli.Grant(rctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("register %s: lease: %w", o.Name, err)
	}
	key := o.Etcd.Prefix + ReplicasPrefix + o.Name
	if _, err := cli.Put(rctx, key, string(value), clientv3.WithLease(lease.ID)); err != nil {
		return nil, fmt.Errorf("register %s: %w", o.Name, err)
	}
	ka, err := cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return nil, fmt.Errorf("register %s: keepalive: %w", o.Name, err)
	}
	return &registration{cli: cli, id: lease.ID, keepalive: ka}, nil
}

// revokeIfStopping revokes the lease when the link is stopping (linkCtx
// ended), so the replica leaves the list at once instead of after its TTL.
func (r *registration) revokeIfStopping(linkCtx context.Context) {
	if linkCtx.Err() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = r.cli.Revoke(ctx, r.id) // best effort: the TTL ends it otherwise
}

func decodeReplica(value []byte) (Replica, error) {
	var r Replica
	err := json.Unmarshal(value, &r)
	return r, err
}
