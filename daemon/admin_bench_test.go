package daemon

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// BenchmarkAdminChange is one admin change over HTTP, applied by the
// backend's actor, without and with a state file (one atomic write with two
// fsyncs per change, as calls come one at a time).
func BenchmarkAdminChange(b *testing.B) {
	for _, withState := range []bool{false, true} {
		b.Run(fmt.Sprintf("state_file=%v", withState), func(b *testing.B) {
			bs := startBackends(b, synth.Knobs{Name: "a"})
			l := startLBD(b, bs, func(c *config.Config) {
				if withState {
					c.StateFile = filepath.Join(b.TempDir(), "state.json")
				}
			})
			u := l.adminURL + "/admin/backend/weight?url=" + bs[0].URL() + "&weight="
			b.ResetTimer()
			for i := range b.N {
				resp, err := http.Post(u+fmt.Sprint(1+i%5), "", nil)
				require.NoError(b, err)
				resp.Body.Close()
				require.Equal(b, http.StatusOK, resp.StatusCode)
			}
		})
	}
}

// BenchmarkReload is one Reload: of an unchanged file, and alternating
// between files with and without a backend (add, then remove with drain).
func BenchmarkReload(b *testing.B) {
	bs := startBackends(b, synth.Knobs{Name: "a"}, synth.Knobs{Name: "b"})
	l := startLBD(b, bs[:1], nil)
	one, two := testConfig(bs[:1], nil), testConfig(bs, nil)
	b.Run("unchanged", func(b *testing.B) {
		for range b.N {
			require.NoError(b, l.reload(b, one))
		}
	})
	b.Run("add-remove", func(b *testing.B) {
		for i := range b.N {
			next := two
			if i%2 == 1 {
				next = one
			}
			require.NoError(b, l.reload(b, next))
		}
		require.NoError(b, l.reload(b, one))
	})
}
