package config

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the .err golden files of ../testdata/config")

const testdataConfig = "../testdata/config"

// TestTestdataConfigs parses every file in testdata/config: a bad-*.json must
// fail with exactly the text of its .err file, any other file must be valid.
func TestTestdataConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdataConfig, "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 12)
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			c, err := Parse(data)
			if !strings.HasPrefix(name, "bad-") {
				require.NoError(t, err)
				require.NoError(t, c.Validate())
				return
			}
			require.Error(t, err)
			require.Nil(t, c)
			golden := strings.TrimSuffix(file, ".json") + ".err"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644))
			}
			want, rerr := os.ReadFile(golden)
			require.NoError(t, rerr, "every bad-*.json needs a .err file (go test -run TestTestdataConfigs -update)")
			require.Equal(t, strings.TrimSuffix(string(want), "\n"), err.Error())
		})
	}
}

// TestOriginalConfig: the original README's config.json keeps working and
// means what it meant.
func TestOriginalConfig(t *testing.T) {
	c, err := Load(filepath.Join(testdataConfig, "original.json"))
	require.NoError(t, err)
	want := Default()
	for _, u := range []string{"http://localhost:8081", "http://localhost:8082", "http://localhost:8083"} {
		want.Backends = append(want.Backends, Backend{URL: u, Weight: 1, Protocol: "http1"})
	}
	require.Equal(t, want, c)
}

// TestFullSetsEveryField keeps full.json honest: it must name every key of
// the schema (every key of a backend in backends[0]), so a field added to
// Config without being added there fails here.
func TestFullSetsEveryField(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testdataConfig, "full.json"))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	var missing []string
	var walk func(path string, typ reflect.Type, obj map[string]any)
	walk = func(path string, typ reflect.Type, obj map[string]any) {
		for i, name := range fieldNames(typ) {
			p := memberPath(path, name)
			v, ok := obj[name]
			if !ok {
				missing = append(missing, p)
				continue
			}
			ft := typ.Field(i).Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem() // an optional section: full.json sets it
			}
			switch {
			case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]():
				sub, _ := v.(map[string]any)
				walk(p, ft, sub)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				list, _ := v.([]any)
				require.NotEmpty(t, list, p)
				first, _ := list[0].(map[string]any)
				walk(p+"[0]", ft.Elem(), first)
			case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
				m, _ := v.(map[string]any)
				require.NotEmpty(t, m, p)
				for _, first := range m { // every entry is checked alike; full.json has one
					sub, _ := first.(map[string]any)
					walk(p+".*", ft.Elem(), sub)
				}
			}
		}
	}
	walk("", reflect.TypeFor[Config](), doc)
	require.Empty(t, missing, "full.json must set every field")

	c, err := Parse(data)
	require.NoError(t, err)
	require.Equal(t, "https://api-1.internal:8443", c.Backends[0].URL, "URLs come out normalised")
	require.Equal(t, "http://[2001:db8::12]:8080", c.Canary.Backend)
	require.Equal(t, "web.internal", c.Discovery[0].DNS, "discovery names come out normalised")
	require.Equal(t, "dns:a:web.internal", c.Discovery[0].SourceName())
	require.Equal(t, "dns:srv:_http._tcp.api.service.consul", c.Discovery[1].SourceName())
	require.Equal(t, "lbd-eu-1", c.Fleet.Name)
}
