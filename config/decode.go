package config

// This file is Parse's strict decoder. It walks the destination through
// reflect and the json tags, applying each JSON member onto a value that
// already holds its default, and it records a Problem with the member's JSON
// path instead of stopping at the first one.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

var (
	configType = reflect.TypeFor[Config]()
	fleetType  = reflect.TypeFor[Fleet]()
)

// elemDefault is the value an element of a slice of t starts from before
// its JSON is applied: DefaultBackend and DefaultDiscovery, else the zero value.
func elemDefault(t reflect.Type) (reflect.Value, bool) {
	switch t {
	case reflect.TypeFor[Backend]():
		return reflect.ValueOf(DefaultBackend()), true
	case reflect.TypeFor[Discovery]():
		return reflect.ValueOf(DefaultDiscovery()), true
	}
	return reflect.Value{}, false
}

type decoder struct {
	problems []Problem
	// pools is the raw "pools" member, decoded after the rest of the file
	// because each pool starts from the top-level settings, which may come
	// after it in the file.
	pools json.RawMessage
}

func (d *decoder) add(path, msg string) { d.problems = append(d.problems, Problem{path, msg}) }

// decode applies the JSON object in data onto c.
func decode(data []byte, c *Config) []Problem {
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return []Problem{{Message: syntaxMessage(data, err)}}
	}
	if raw = bytes.TrimSpace(raw); raw[0] != '{' {
		return []Problem{{Message: `the file must hold a JSON object such as {"backends": []}, got ` + describe(raw)}}
	}
	var d decoder
	d.value("", raw, reflect.ValueOf(c).Elem())
	if d.pools != nil && string(bytes.TrimSpace(d.pools)) != "null" {
		d.mapObject("pools", d.pools, reflect.ValueOf(&c.Pools).Elem(), func() reflect.Value {
			p := c.poolTemplate()
			return reflect.ValueOf(&p).Elem()
		})
	}
	return d.problems
}

// value applies raw onto v, which is addressable.
func (d *decoder) value(path string, raw json.RawMessage, v reflect.Value) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return // null keeps the default, as encoding/json does
	}
	if u, ok := v.Addr().Interface().(json.Unmarshaler); ok {
		if err := u.UnmarshalJSON(raw); err != nil {
			d.add(path, err.Error())
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.object(path, raw, v)
	case reflect.Slice:
		d.array(path, raw, v)
	case reflect.Map:
		d.mapObject(path, raw, v, func() reflect.Value { return reflect.New(v.Type().Elem()).Elem() })
	case reflect.Pointer: // an optional section: present means on, from its defaults
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			if v.Type().Elem() == fleetType {
				v.Elem().Set(reflect.ValueOf(DefaultFleet()))
			}
		}
		d.value(path, raw, v.Elem())
	default:
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			d.add(path, wantMessage(v.Kind(), raw))
		}
	}
}

func (d *decoder) object(path string, raw json.RawMessage, v reflect.Value) {
	if raw[0] != '{' {
		d.add(path, "want an object, got "+describe(raw))
		return
	}
	names := fieldNames(v.Type())
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		d.add(path, err.Error())
		return
	}
	for dec.More() {
		tok, err := dec.Token()
		var member json.RawMessage
		if err == nil {
			err = dec.Decode(&member)
		}
		if err != nil { // raw was checked by json.Unmarshal: cannot happen
			d.add(path, err.Error())
			return
		}
		key, _ := tok.(string)
		p := memberPath(path, key)
		if v.Type() == configType && key == "pools" {
			d.pools = member
			continue
		}
		if i := slicesIndex(names, key); i >= 0 {
			d.value(p, member, v.Field(i))
		} else {
			d.add(p, unknownKey(key, names))
		}
	}
}

// mapObject replaces v's map (string keys) with the JSON object's members,
// each decoded onto a fresh element from start. A key given twice is a
// problem rather than an override: map keys here are names (pools, header
// names), and two entries under one name are an editing mistake whose
// first half would silently vanish.
func (d *decoder) mapObject(path string, raw json.RawMessage, v reflect.Value, start func() reflect.Value) {
	raw = bytes.TrimSpace(raw)
	if raw[0] != '{' {
		d.add(path, "want an object, got "+describe(raw))
		return
	}
	m := reflect.MakeMap(v.Type())
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		d.add(path, err.Error())
		return
	}
	for dec.More() {
		tok, err := dec.Token()
		var member json.RawMessage
		if err == nil {
			err = dec.Decode(&member)
		}
		if err != nil { // raw was checked by json.Unmarshal: cannot happen
			d.add(path, err.Error())
			return
		}
		key, _ := tok.(string)
		p := memberPath(path, key)
		if m.MapIndex(reflect.ValueOf(key)).IsValid() {
			d.add(p, "given twice; each name may appear once")
			continue
		}
		e := start()
		d.value(p, member, e)
		m.SetMapIndex(reflect.ValueOf(key), e)
	}
	v.Set(m)
}

// array replaces v's slice with the JSON array's elements, each starting
// from its default (elemDefault).
func (d *decoder) array(path string, raw json.RawMessage, v reflect.Value) {
	var elems []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		d.add(path, "want an array, got "+describe(raw))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(elems), len(elems))
	for i, e := range elems {
		if def, ok := elemDefault(v.Type().Elem()); ok {
			s.Index(i).Set(def)
		}
		d.value(fmt.Sprintf("%s[%d]", path, i), e, s.Index(i))
	}
	v.Set(s)
}

// fieldNames lists the JSON name of each field of t, by field index; "" for
// a field that JSON does not see.
func fieldNames(t reflect.Type) []string {
	names := make([]string, t.NumField())
	for i := range names {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" {
			names[i] = name
		}
	}
	return names
}

func slicesIndex(names []string, key string) int {
	for i, n := range names {
		if n != "" && n == key {
			return i
		}
	}
	return -1
}

// memberPath appends key to path: a.b, or a["odd key"] when the key is not
// a plain word, so that a path never breaks a one-problem-per-line listing.
// A long key is cut: the path names it, it need not repeat a megabyte of it.
func memberPath(path, key string) string {
	if len(key) > 64 {
		key = strings.ToValidUTF8(key[:61], "") + "..."
	}
	plain := key != ""
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			plain = false
		}
	}
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	}
	return path + "." + key
}

// unknownKey says that key is not known, with a suggestion when one known
// name is within two edits of it (or differs only in case).
func unknownKey(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if n == "" {
			continue
		}
		dist := editDistance(strings.ToLower(key), n)
		if dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best == "" {
		return "unknown key"
	}
	return fmt.Sprintf("unknown key (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64 // no suggestion for long keys, and no quadratic work either
	}
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// wantMessage explains a value of the wrong JSON type for a field of kind k.
func wantMessage(k reflect.Kind, raw []byte) string {
	want := "want a string"
	switch k {
	case reflect.Bool:
		want = "want true or false"
	case reflect.Float32, reflect.Float64:
		want = "want a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want = "want a whole number"
		if f, err := strconv.ParseFloat(string(raw), 64); err == nil && f == math.Trunc(f) {
			return fmt.Sprintf("%s is out of range", raw)
		}
	}
	return want + ", got " + describe(raw)
}

// describe names a JSON value for an error message, briefly.
func describe(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	if len(raw) > 40 {
		return strings.ToValidUTF8(string(raw[:37]), "") + "..."
	}
	return string(raw)
}

// syntaxMessage turns a JSON syntax error into "line L, column C: why".
func syntaxMessage(data []byte, err error) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return "the file is empty; the smallest config is {}"
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err.Error()
	}
	before := data[:max(0, min(int(se.Offset)-1, len(data)))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d: %s", line, col, se.Error())
}
