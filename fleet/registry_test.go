package fleet

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/etcdtest"
)

// TestRegistry: three replicas see each other; one cut off by a partition
// leaves the list within its lease TTL; one that stops leaves it at once;
// the cut-off one registers again when it is back.
func TestRegistry(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	proxy := etcdtest.NewProxy(t, srv.Addr())
	a, _ := startLink(t, srv.Endpoint(), "a")
	b, _ := startLink(t, srv.Endpoint(), "b")
	c, _ := startLink(t, proxy.Endpoint(), "c")
	all := []string{"a", "b", "c"}
	for _, l := range []*Link{a, b, c} {
		waitStatus(t, l, "three replicas", func(s *Status) bool { return slices.Equal(replicaNames(s.Replicas), all) })
	}
	r := a.Replicas()[2]
	require.Equal(t, "c", r.Name)
	require.Equal(t, "127.0.0.1:3031", r.AdminAddress)
	require.Equal(t, "test", r.Version)
	require.WithinDuration(t, time.Now(), r.StartedAt, time.Minute)

	const ttl = 2 * time.Second // startLink's LeaseTTL
	proxy.Partition()
	cut := time.Now()
	waitStatus(t, a, "c to expire", func(s *Status) bool { return slices.Equal(replicaNames(s.Replicas), []string{"a", "b"}) })
	gone := time.Since(cut)
	t.Logf("a replica cut off left the list after %s (lease TTL %s)", gone.Round(time.Millisecond), ttl)
	// The lease ends TTL after its last keepalive (sent every TTL/3);
	// etcd looks for expired leases every 500ms. Twice the TTL leaves room
	// for a loaded machine without letting "never" pass.
	require.Less(t, gone, 2*ttl)

	stopped := time.Now()
	stopLink(t, b)
	waitStatus(t, a, "b to leave", func(s *Status) bool { return slices.Equal(replicaNames(s.Replicas), []string{"a"}) })
	require.Less(t, time.Since(stopped), ttl, "a clean stop revokes the lease instead of waiting for it")

	proxy.Heal()
	waitStatus(t, a, "c back", func(s *Status) bool { return slices.Equal(replicaNames(s.Replicas), []string{"a", "c"}) })
}

// TestRegisterAgainAfterLeaseLost: when etcd forgets the lease (revoked
// here, as after an expiry during a long partition), the replica registers
// again on the same session.
func TestRegisterAgainAfterLeaseLost(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := srv.Client()
	a, _ := startLink(t, srv.Endpoint(), "a")
	ctx := context.Background()
	resp, err := cli.Get(ctx, prefix+ReplicasPrefix+"a")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	var r Replica
	require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &r))
	require.Equal(t, "a", r.Name)
	_, err = cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	require.NoError(t, err)
	resyncs := a.Status().Self.Resyncs

	waitStatus(t, a, "registered again", func(s *Status) bool {
		got, err := cli.Get(ctx, prefix+ReplicasPrefix+"a")
		return err == nil && len(got.Kvs) == 1 && got.Kvs[0].Lease != resp.Kvs[0].Lease && len(s.Replicas) == 1
	})
	require.Equal(t, resyncs, a.Status().Self.Resyncs, "on the same session: no new list")
}

// TestAuthTokenRefresh: with authentication on and tokens that expire
// after one idle second, the link keeps committing and watching past the
// expiry and past an etcd restart, which forgets every token
// (traefik#11941).
func TestAuthTokenRefresh(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{AuthTokenTTL: time.Second})
	srv.EnableAuth("lbd", "s3cret")
	pw := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret\n"), 0o600))
	login := func(o *Options) {
		o.Etcd.Username, o.Etcd.PasswordFile = "lbd", pw
		o.Heartbeat = time.Minute // no request in between keeps the token alive
	}
	a, _ := startLink(t, srv.Endpoint(), "a", login)
	b, sinkB := startLink(t, srv.Endpoint(), "b", login)
	ctx := context.Background()
	commit := func(key string) {
		t.Helper()
		rev, err := a.Commit(ctx, Put(key, []byte("1"), IfAbsent))
		require.NoError(t, err)
		require.NoError(t, b.WaitApplied(ctx, rev))
		_, ok := sinkB.get(key)
		require.True(t, ok)
	}
	commit("state/before")
	resyncs := a.Status().Self.Resyncs

	// Simple tokens expire after --auth-token-ttl without use; there is
	// no event to wait for, only the clock.
	<-time.After(2500 * time.Millisecond)
	commit("state/after-expiry")
	require.Equal(t, resyncs, a.Status().Self.Resyncs, "the client fetched a new token; the session went on")
	require.True(t, a.Status().Self.Connected)

	srv.Restart()
	for _, l := range []*Link{a, b} {
		waitStatus(t, l, "reconnected", func(s *Status) bool { return s.Self.Connected })
	}
	commit("state/after-restart")
	require.True(t, a.Status().Self.Connected)

	_, bad := startLinkNoWait(t, srv.Endpoint(), "bad", func(o *Options) {
		o.Etcd.Username, o.Etcd.PasswordFile = "lbd", filepath.Join(t.TempDir(), "wrong")
	})
	require.ErrorContains(t, bad, "fleet.etcd.password_file")
}

// TestTLS: a link reaches an etcd that requires client certificates.
func TestTLS(t *testing.T) {
	certs := etcdtest.NewCerts(t)
	srv := etcdtest.Start(t, etcdtest.Options{TLS: certs})
	a, _ := startLink(t, srv.Endpoint(), "a", func(o *Options) {
		o.Etcd.CAFile, o.Etcd.CertFile, o.Etcd.KeyFile = certs.CA, certs.ClientCert, certs.ClientKey
	})
	rev, err := a.Commit(context.Background(), Put("state/x", []byte("1"), IfAbsent))
	require.NoError(t, err)
	require.NoError(t, a.WaitApplied(context.Background(), rev))

	noCert, err := startLinkNoWait(t, srv.Endpoint(), "b", func(o *Options) { o.Etcd.CAFile = certs.CA })
	require.NoError(t, err)
	waitStatus(t, noCert, "a failed session", func(s *Status) bool { return s.Self.LastError != "" })
	require.False(t, noCert.Status().Self.Connected)
}

// startLinkNoWait is startLink without waiting for the first session.
func startLinkNoWait(t *testing.T, endpoint, name string, opts ...linkOpt) (*Link, error) {
	t.Helper()
	o := Options{
		Etcd: config.Etcd{Endpoints: []string{endpoint}, Prefix: prefix, DialTimeout: config.Duration(time.Second)},
		Name: name, Sink: newSink(), LeaseTTL: 2 * time.Second, RequestTimeout: 2 * time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: quiet,
	}
	for _, f := range opts {
		f(&o)
	}
	l, err := New(o)
	if err == nil {
		t.Cleanup(func() { stopLink(t, l) })
	}
	return l, err
}
