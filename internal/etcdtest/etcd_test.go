package etcdtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRestartKeepsData: what a test writes survives SIGKILL and SIGTERM
// restarts on the same data directory and endpoint; every client API the
// fleet link uses (Get, Txn, Watch, Compact, Lease) works against this
// server version.
func TestRestartKeepsData(t *testing.T) {
	s := Start(t, Options{})
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	put, err := c.Put(ctx, "a", "1")
	require.NoError(t, err)
	txn, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("a"), "=", put.Header.Revision)).
		Then(clientv3.OpPut("a", "2")).Commit()
	require.NoError(t, err)
	require.True(t, txn.Succeeded)
	_, err = c.Compact(ctx, txn.Header.Revision)
	require.NoError(t, err)
	wch := c.Watch(ctx, "a", clientv3.WithRev(put.Header.Revision))
	wr := <-wch
	require.ErrorIs(t, wr.Err(), rpctypes.ErrCompacted, "a watch from a compacted revision says so")
	lease, err := c.Grant(ctx, 5)
	require.NoError(t, err)
	_, err = c.Put(ctx, "l", "x", clientv3.WithLease(lease.ID))
	require.NoError(t, err)

	s.Kill()
	s.Restart()
	s.Stop()
	s.Restart()
	got, err := c.Get(ctx, "a")
	require.NoError(t, err, "the first client reconnects to the restarted server")
	require.Equal(t, "2", string(got.Kvs[0].Value))
}

// TestAuthAndTLS: the helper's client works with authentication and with
// client-certificate TLS.
func TestAuthAndTLS(t *testing.T) {
	s := Start(t, Options{AuthTokenTTL: time.Second, TLS: NewCerts(t)})
	s.EnableAuth("lbd", "secret")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := s.Client().Put(ctx, "k", "v")
	require.NoError(t, err)
	s.Restart()
	got, err := s.Client().Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
}

// TestProxyPartition: a client through the proxy fails while partitioned
// and works again once healed.
func TestProxyPartition(t *testing.T) {
	s := Start(t, Options{})
	p := NewProxy(t, s.Addr())
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{p.Endpoint()}, DialTimeout: time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	_, err = c.Put(ctx, "k", "1")
	require.NoError(t, err)

	p.Partition()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Put(short, "k", "2")
	cancel()
	require.Error(t, err)

	p.Heal()
	long, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = c.Put(long, "k", "3")
	require.NoError(t, err)
}
