package config

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParse: Parse never panics, and either returns a config that is valid,
// already normalised and survives a marshal/parse round trip unchanged, or
// a *ValidationError whose every problem says something.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testdataConfig, "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(f, err)
		f.Add(data)
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"backends":null}`, `{"backends":[null]}`,
		`{"backends":[{"url":"http://[::1]"}],"canary":{"backend":"http://[::1]:80","percent":100}}`,
		`{"health":{"interval":"1h2m3.5s"},"policy":"rr","policy":"lc"}`,
		`{"admission":{"trusted_proxies":[]},"retries":{"max":1e3}}`,
		`{"a":{"b":{"c":[1,2,{"d":null}]}}}`,
		`{"discovery":[{"dns":"A.b.","type":"a","port":1},{"dns":"_x._tcp.b","type":"srv","refresh":"1s"},null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			require.Nil(t, c)
			require.NotEmpty(t, err.Error())
			var ve *ValidationError
			require.True(t, errors.As(err, &ve))
			require.NotEmpty(t, ve.Problems)
			for _, p := range ve.Problems {
				require.NotEmpty(t, p.Message, "problem at %q", p.Path)
			}
			return
		}
		require.NoError(t, c.Validate())
		for _, b := range c.Backends {
			n, err := NormalizeURL(b.URL)
			require.NoError(t, err)
			require.Equal(t, n, b.URL, "Parse normalises backend URLs")
		}
		require.Equal(t, c, c.Clone())

		out, err := json.Marshal(c)
		require.NoError(t, err)
		again, err := Parse(out)
		require.NoError(t, err, "a marshalled valid config parses: %s", out)
		out2, err := json.Marshal(again)
		require.NoError(t, err)
		require.Equal(t, string(out), string(out2), "the round trip keeps every value")
	})
}

// FuzzNormalizeURL: never panics; a result is idempotent and is exactly
// scheme://host:port with an http or https scheme.
func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{
		"http://localhost:8081", "HTTPS://Example.com/", "http://[::1]", "http://[::ffff:10.0.0.1]:1",
		"http://x:080", "http://u:p@x", "http://x/a?b#c", "localhost:8081", "http://[fe80::1%25en0]",
		"http://%41", "http://x:", "", " http://x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, err := NormalizeURL(raw)
		if err != nil {
			require.NotEmpty(t, err.Error())
			require.Empty(t, n)
			return
		}
		again, err := NormalizeURL(n)
		require.NoError(t, err, "normalised %q to %q", raw, n)
		require.Equal(t, n, again)
		u, err := url.Parse(n)
		require.NoError(t, err)
		require.Contains(t, []string{"http", "https"}, u.Scheme)
		require.NotEmpty(t, u.Hostname())
		require.NotEmpty(t, u.Port())
		require.Equal(t, u.Scheme+"://"+u.Host, n)
	})
}
