package loadgen

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url     string
		wantErr string // "" ok; "loopback" means ErrNotLoopback
	}{
		{"http://127.0.0.1:3030/", ""},
		{"http://127.8.9.10/x", ""},
		{"https://[::1]:8443/", ""},
		{"http://localhost:1", ""},
		{"http://LocalHost:1", ""},
		{"http://[::ffff:127.0.0.1]:80/", ""},
		{"http://10.0.0.1/", "loopback"},
		{"http://192.168.1.1:3030/", "loopback"},
		{"http://example.com/", "loopback"},
		{"http://localhost.example.com/", "loopback"},
		{"http://[::2]/", "loopback"},
		{"http://0.0.0.0:3030/", "loopback"},
		{"ftp://127.0.0.1/", "scheme"},
		{"localhost:3030", "scheme"},
		{"127.0.0.1:3030", "URL"},
		{"http:///nohost", "no host"},
		{"http://%zz", "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := CheckLoopback(tc.url)
			switch tc.wantErr {
			case "":
				require.NoError(t, err)
			case "loopback":
				require.ErrorIs(t, err, ErrNotLoopback)
			default:
				require.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}

func TestDialerRefusesNonLoopback(t *testing.T) {
	require.NoError(t, loopbackOnly("tcp4", "127.0.0.1:80", nil))
	require.NoError(t, loopbackOnly("tcp6", "[::1]:80", nil))
	require.ErrorIs(t, loopbackOnly("tcp4", "10.1.2.3:80", nil), ErrNotLoopback)
	require.Error(t, loopbackOnly("tcp4", "garbage", nil))
}

func TestValidate(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:1/"}
	require.NoError(t, ok.Validate(), "defaults make a valid config")
	d := ok.withDefaults()
	require.Equal(t, DefaultN, d.N)
	require.Equal(t, DefaultDuration, d.Duration)
	require.Equal(t, http.MethodGet, d.Method)

	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"n too big", func(c *Config) { c.N = MaxN + 1 }, "n 10000001"},
		{"negative n", func(c *Config) { c.N = -1 }, "n -1"},
		{"duration too long", func(c *Config) { c.Duration = 2 * time.Hour }, "duration"},
		{"rate too high", func(c *Config) { c.Rate = MaxRate * 2 }, "rate"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate"},
		{"workers", func(c *Config) { c.Concurrency = MaxConcurrency + 1 }, "concurrency"},
		{"outstanding", func(c *Config) { c.MaxOutstanding = -3 }, "max outstanding"},
		{"body", func(c *Config) { c.BodySize = -1 }, "body size"},
		{"method", func(c *Config) { c.Method = "GE T" }, "method"},
		{"remote", func(c *Config) { c.URL = "http://203.0.113.7/" }, "not a loopback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			require.ErrorContains(t, c.Validate(), tc.wantErr)
		})
	}
}
