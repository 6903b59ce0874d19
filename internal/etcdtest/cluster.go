package etcdtest

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// StartCluster starts an n-member cluster (each member on its own ports
// and data directory) and waits until every member serves reads, which
// needs an elected leader. Killing a majority leaves the rest without one:
// that is how a test makes a member that is up but cut off from its
// cluster. Cleanup kills every member.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	if _, err := os.Stat(Binary()); err != nil {
		t.Skipf("etcd not available (%v): install Debian's etcd-server package (apt-get install etcd-server) or set LBD_ETCD", err)
	}
	members := make([]*Server, n)
	var initial []string
	for i := range members {
		s := &Server{t: t, dir: t.TempDir(), name: fmt.Sprintf("m%d", i), client: FreePort(t), peer: FreePort(t)}
		t.Cleanup(s.Kill)
		members[i] = s
		initial = append(initial, s.name+"="+s.peerURL())
	}
	exited := make([]<-chan struct{}, n)
	for i, s := range members {
		s.cluster = strings.Join(initial, ",")
		var err error
		if exited[i], err = s.spawn(); err != nil {
			t.Fatalf("etcdtest: member %s: %v", s.name, err)
		}
	}
	for i, s := range members {
		if err := s.waitReady(exited[i]); err != nil {
			t.Fatalf("etcdtest: member %s: %v; its log:\n%s", s.name, err, tail(s.Log(), 2000))
		}
	}
	return members
}
