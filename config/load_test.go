package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNormalizeURL(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "http://localhost:8081", want: "http://localhost:8081"},
		{in: "http://localhost", want: "http://localhost:80"},
		{in: "https://example.com", want: "https://example.com:443"},
		{in: "HTTP://Example.COM:8080/", want: "http://example.com:8080"},
		{in: "http://x:080", want: "http://x:80"},
		{in: "http://127.0.0.1:9000", want: "http://127.0.0.1:9000"},
		{in: "http://[::1]", want: "http://[::1]:80"},
		{in: "https://[2001:DB8:0::1]:8443/", want: "https://[2001:db8::1]:8443"},
		{in: "http://my_host.internal:1", want: "http://my_host.internal:1"},
		{in: "", err: "URL is empty"},
		{in: " http://x", err: "has leading or trailing spaces"},
		{in: "localhost:8081", err: `"localhost:8081" must start with http:// or https://`},
		{in: "ftp://x", err: `has scheme "ftp"; only http and https are supported`},
		{in: "http://x/api", err: "has a path"},
		{in: "http://x//", err: "has a path"},
		{in: "http://x?a=1", err: "has a query"},
		{in: "http://x?", err: "has a query"},
		{in: "http://x#frag", err: "has a fragment"},
		{in: "http://x#", err: "has a fragment"},
		{in: "http://user:secret@x", err: "contains user info"},
		{in: "http://", err: "has no host"},
		{in: "http://:8080", err: "has no host"},
		{in: "http://x:", err: "has an empty port"},
		{in: "http://x:0", err: "has port 0; ports are 1 to 65535"},
		{in: "http://x:65536", err: "has port 65536"},
		{in: "http://[fe80::1%25eth0]", err: "zones are not supported"},
		{in: "http://[127.0.0.1]", err: "is not a valid URL"},
		{in: "http://bücher.de", err: "xn-- form"},
		{in: "http://a b", err: "is not a valid URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeURL(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.Empty(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := NormalizeURL(got)
			require.NoError(t, err)
			require.Equal(t, got, again, "normalising is idempotent")
		})
	}
}

func TestParseOverlaysDefaults(t *testing.T) {
	c, err := Parse([]byte(`{
		"backends": [{"url": "http://localhost:8081"}, {"url": "https://b", "weight": 5, "protocol": "h2"}],
		"health": {"interval": "5s"},
		"aimd": {"enabled": false},
		"access_log": {"sample_rate": 0}
	}`))
	require.NoError(t, err)

	want := Default()
	want.Backends = []Backend{
		{URL: "http://localhost:8081", Weight: 1, Protocol: "http1"},
		{URL: "https://b:443", Weight: 5, Protocol: "h2"},
	}
	want.Health.Interval = Duration(5 * time.Second) // the rest of health keeps its defaults
	want.AIMD.Enabled = false
	want.AccessLog.SampleRate = 0 // an explicit zero is kept, not replaced by the default
	require.Equal(t, want, c)
}

func TestParseEmptyObjectIsDefault(t *testing.T) {
	c, err := Parse([]byte(" {} "))
	require.NoError(t, err)
	require.Equal(t, Default(), c)
}

func TestParseNullKeepsDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"health": null, "policy": null, "backends": [{"url": "http://a", "weight": null}]}`))
	require.NoError(t, err)
	require.Equal(t, Default().Health, c.Health)
	require.Equal(t, "p2c-ewma", c.Policy)
	require.Equal(t, 1, c.Backends[0].Weight)
}

func TestParseDuplicateKeyLastWins(t *testing.T) {
	c, err := Parse([]byte(`{"policy": "rr", "policy": "lc"}`))
	require.NoError(t, err)
	require.Equal(t, "lc", c.Policy)
}

func TestParseDecodeProblems(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"case matters", `{"Listen": ":1"}`, `Listen: unknown key (did you mean "listen"?)`},
		{"no suggestion", `{"zzzzzz": 1}`, `zzzzzz: unknown key`},
		{"odd key quoted", `{"admin": {"a.b\n": 1}}`, `admin["a.b\n"]: unknown key`},
		{"unknown in list element", `{"backends": [{"url": "http://a"}, {"url": "http://b", "x": 1}]}`, `backends[1].x: unknown key`},
		{"int overflow", `{"retries": {"max": 1e30}}`, `retries.max: 1e30 is out of range`},
		{"string for number", `{"canary": {"percent": "5"}}`, `canary.percent: want a number, got "5"`},
		{"number for string", `{"policy": 1}`, `policy: want a string, got 1`},
		{"long value cut", `{"policy": ["` + strings.Repeat("x", 100) + `"]}`, `policy: want a string, got an array`},
		{"long string cut", `{"listen": 12345678901234567890123456789012345678901234567890}`, `listen: want a string, got 1234567890123456789012345678901234567...`},
		{"syntax position", "{\n\"a\" 1}", `line 2, column 5: invalid character '1' after object key`},
		{"trailing data", `{} {}`, `line 1, column 4: invalid character '{' after top-level value`},
		{"null file", `null`, `the file must hold a JSON object such as {"backends": []}, got null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in))
			require.Nil(t, c)
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"policy": "x", "listen": "nope"}`), 0o644))

	_, err := Load(path)
	require.EqualError(t, err, path+`: listen: "nope" is not host:port, as in ":3030" or "127.0.0.1:3031"`+"\n"+
		path+`: policy: must be one of rr, wrr, lc, p2c-ewma, got "x"`)
	require.Equal(t, []Problem{
		{"listen", `"nope" is not host:port, as in ":3030" or "127.0.0.1:3031"`},
		{"policy", `must be one of rr, wrr, lc, p2c-ewma, got "x"`},
	}, Check(path))

	_, err = Load(filepath.Join(dir, "missing.json"))
	require.ErrorContains(t, err, "missing.json")
	require.ErrorIs(t, err, os.ErrNotExist)
	probs := Check(filepath.Join(dir, "missing.json"))
	require.Len(t, probs, 1)
	require.Empty(t, probs[0].Path)
	require.Contains(t, probs[0].Message, "missing.json")

	require.NoError(t, os.WriteFile(path, []byte(`{}`), 0o644))
	require.Nil(t, Check(path))
}

func TestCloneIsDeep(t *testing.T) {
	c, err := Load(filepath.Join(testdataConfig, "full.json"))
	require.NoError(t, err)
	d := c.Clone()
	require.Equal(t, c, d)
	d.Backends[0].Weight = 99
	d.Admission.TrustedProxies[0] = "1.2.3.4"
	d.Fleet.Etcd.Endpoints[0] = "http://elsewhere:2379"
	d.Fleet.Name = "other"
	require.Equal(t, "https://etcd-1.internal:2379", c.Fleet.Etcd.Endpoints[0])
	require.Equal(t, "lbd-eu-1", c.Fleet.Name)
	require.NotEqual(t, 99, c.Backends[0].Weight)
	require.Equal(t, "10.0.0.0/8", c.Admission.TrustedProxies[0])
}

func TestRedacted(t *testing.T) {
	c, err := Load(filepath.Join(testdataConfig, "full.json"))
	require.NoError(t, err)
	r := c.Redacted()
	require.Equal(t, c, r, "a parsed config has no secret values; token_file is a path and stays")
	require.Equal(t, "/etc/lbd/admin-token", r.Admin.TokenFile)

	// A config built in code may carry credentials in a URL.
	c.Backends[0].URL = "https://user:hunter2@api.internal:8443"
	c.Canary.Backend = "http://token@b:80"
	r = c.Redacted()
	require.Equal(t, "https://redacted@api.internal:8443", r.Backends[0].URL)
	require.Equal(t, "http://redacted@b:80", r.Canary.Backend)
	require.Equal(t, "https://user:hunter2@api.internal:8443", c.Backends[0].URL, "the original is untouched")
	require.NotContains(t, (&Config{Backends: []Backend{{URL: "http://a:b@%zz"}}}).Redacted().Backends[0].URL, "a:b")
}

func TestParseCutsLongUnknownKeys(t *testing.T) {
	_, err := Parse([]byte(`{"` + strings.Repeat("k", 1000) + `": 1}`))
	require.EqualError(t, err, `["`+strings.Repeat("k", 61)+`..."]: unknown key`)
}

func TestParseFleet(t *testing.T) {
	c, err := Parse([]byte(`{}`))
	require.NoError(t, err)
	require.Nil(t, c.Fleet, "no fleet section: this lbd runs alone")

	c, err = Parse([]byte(`{"fleet": {}}`))
	require.NoError(t, err)
	want := DefaultFleet()
	require.Equal(t, &want, c.Fleet, "an empty section is on, with its defaults")

	c, err = Parse([]byte(`{"fleet": {"etcd": {"endpoints": ["http://10.1.1.1:2379"], "dial_timeout": "500ms"}}}`))
	require.NoError(t, err)
	require.Equal(t, []string{"http://10.1.1.1:2379"}, c.Fleet.Etcd.Endpoints, "the list replaces the default")
	require.Equal(t, "/lbd/", c.Fleet.Etcd.Prefix, "omitted keys keep their defaults")
	require.Equal(t, 500*time.Millisecond, c.Fleet.Etcd.DialTimeout.D())

	c, err = Parse([]byte(`{"fleet": null}`))
	require.NoError(t, err)
	require.Nil(t, c.Fleet)

	_, err = Parse([]byte(`{"fleet": {"etcd": {"endpoint": ["http://a:1"], "prefix": 3}, "nmae": "x"}}`))
	require.EqualError(t, err, strings.Join([]string{
		`fleet.etcd.endpoint: unknown key (did you mean "endpoints"?)`,
		`fleet.etcd.prefix: want a string, got 3`,
		`fleet.nmae: unknown key (did you mean "name"?)`,
	}, "\n"))

	_, err = Parse([]byte(`{"fleet": {}, "state_file": "/var/lib/lbd/state.json"}`))
	require.EqualError(t, err, "state_file: with fleet, state_file is not used; remove it")
}

func TestReplicaName(t *testing.T) {
	f := DefaultFleet()
	require.Equal(t, "web-1@127.0.0.1:3031", f.ReplicaName("web-1", "127.0.0.1:3031"))
	require.Equal(t, "a_b@[::1]:3031", f.ReplicaName("a/b", "[::1]:3031"), "a name is one key segment")
	f.Name = "eu-1"
	require.Equal(t, "eu-1", f.ReplicaName("web-1", "127.0.0.1:3031"))
}
