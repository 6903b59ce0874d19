package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// SettingChange is one setting that differs between two configs, by its
// JSON path, with its old and new values as JSON would show them (nil for
// a setting one side does not have).
type SettingChange struct {
	Path string `json:"path"`
	From any    `json:"from"`
	To   any    `json:"to"`
}

// Diff lists every setting that differs from a to b, in JSON path order
// within each object (keys sorted). Lists of backends are left out: what
// changed in them is the routing plan's to say, backend by backend. A list
// whose length changed is one change of the whole list; otherwise its
// elements are compared one by one.
//
// Secret values (tracing.headers) are shown as Redacted: the change is
// listed, its values are not.
func Diff(a, b *Config) []SettingChange {
	var out []SettingChange
	diffJSON("", toJSON(a), toJSON(b), &out)
	for i, c := range out {
		out[i].From, out[i].To = redactSecrets(c.Path, c.From), redactSecrets(c.Path, c.To)
	}
	return out
}

// redactSecrets masks the header values in the JSON value at path: the
// tracing section, its headers, or one header.
func redactSecrets(path string, v any) any {
	const headers = "tracing.headers"
	switch {
	case v == nil:
		return nil
	case path == "tracing":
		if m, ok := v.(map[string]any); ok && m["headers"] != nil {
			m = maps.Clone(m)
			m["headers"] = redactSecrets(headers, m["headers"])
			return m
		}
	case path == headers:
		if m, ok := v.(map[string]any); ok {
			m = maps.Clone(m)
			for k := range m {
				m[k] = Redacted
			}
			return m
		}
	case strings.HasPrefix(path, headers+".") || strings.HasPrefix(path, headers+"["):
		return Redacted
	}
	return v
}

func toJSON(c *Config) any {
	data, err := json.Marshal(c)
	if err != nil { // plain data: cannot happen
		panic(fmt.Sprintf("config: marshal: %v", err))
	}
	var v any
	_ = json.Unmarshal(data, &v)
	return v
}

func diffJSON(path string, a, b any, out *[]SettingChange) {
	if reflect.DeepEqual(a, b) {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := maps.Clone(am)
		maps.Copy(keys, bm)
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			if k == "backends" {
				continue
			}
			diffJSON(memberPath(path, k), am[k], bm[k], out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i], out)
		}
		return
	}
	*out = append(*out, SettingChange{Path: path, From: a, To: b})
}
