package fleet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/internal/etcdtest"
)

// TestStatusJSON pins the body of GET /admin/fleet (docs/FLEET.md).
func TestStatusJSON(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	l, _ := startLink(t, srv.Endpoint(), "web-1@127.0.0.1:3031")
	body, err := json.Marshal(l.Status())
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(body, &doc))
	self := doc["self"].(map[string]any)
	require.Equal(t, "web-1@127.0.0.1:3031", self["name"])
	require.Equal(t, true, self["connected"])
	require.Equal(t, true, self["synced"])
	require.Positive(t, self["revision"])
	require.Contains(t, self, "changes_applied")
	require.Contains(t, self, "resyncs")
	require.NotContains(t, self, "last_error", "omitted until something fails")
	require.NotContains(t, self, "last_error_at")
	require.Equal(t, map[string]any{"endpoints": []any{srv.Endpoint()}, "prefix": "/lbd/"}, doc["etcd"])
	replicas := doc["replicas"].([]any)
	require.Len(t, replicas, 1)
	r := replicas[0].(map[string]any)
	require.Equal(t, "web-1@127.0.0.1:3031", r["name"])
	require.Equal(t, "127.0.0.1:3031", r["admin_address"])
	require.Equal(t, "test", r["version"])
	started, err := time.Parse(time.RFC3339Nano, r["started_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), started, time.Minute)
}
