package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/lbd/lbd/config"
)

// apiError is a rejection with its status; handlers write it as API.md's
// {"error": ...} shape. Every parse helper returns one naming the field.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// takes wraps a handler with the query parameters it takes. Any other, a
// repeated one or a malformed query is a 400 naming it, so that a typo
// (wieght=2) is not silently ignored: the query forms are as strict as the
// JSON bodies and the config file.
func takes(h http.HandlerFunc, allowed ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkParams(r.URL.RawQuery, allowed); err != nil {
			writeError(w, err.status, err.msg)
			return
		}
		h(w, r)
	}
}

func checkParams(raw string, allowed []string) *apiError {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return badRequest("query: %v", err)
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		switch {
		case !slices.Contains(allowed, k) && len(allowed) == 0:
			return badRequest("%s: unknown parameter; this call takes no query parameters", k)
		case !slices.Contains(allowed, k):
			return badRequest("%s: unknown parameter; this call takes %s", k, strings.Join(allowed, ", "))
		case len(q[k]) > 1:
			return badRequest("%s: given %d times; give it once", k, len(q[k]))
		}
	}
	return nil
}

// queryURL reads and normalises the url parameter.
func queryURL(r *http.Request) (string, *apiError) {
	return normURL("url", r.URL.Query().Get("url"))
}

func normURL(field, raw string) (string, *apiError) {
	if raw == "" {
		return "", badRequest("%s: missing; give the backend's URL, e.g. %s=http://127.0.0.1:8081", field, field)
	}
	u, err := config.NormalizeURL(raw)
	if err != nil {
		return "", badRequest("%s: %v", field, err)
	}
	return u, nil
}

// queryInt reads an integer parameter; def is used when it is absent.
func queryInt(r *http.Request, name string, def, lo, hi int) (int, *apiError) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if errors.Is(err, strconv.ErrRange) {
		return 0, badRequest("%s: %s is out of range", name, raw)
	}
	if err != nil {
		return 0, badRequest("%s: %q is not a whole number", name, raw)
	}
	if n < lo || n > hi {
		return 0, badRequest("%s: must be between %d and %d, got %d", name, lo, hi, n)
	}
	return n, nil
}

// requireInt is queryInt for a parameter that must be present.
func requireInt(r *http.Request, name string, lo, hi int) (int, *apiError) {
	if !r.URL.Query().Has(name) {
		return 0, badRequest("%s: missing; give a whole number between %d and %d", name, lo, hi)
	}
	return queryInt(r, name, 0, lo, hi)
}

// percent parses a canary percentage in 0..100.
func percent(name, raw string) (float64, *apiError) {
	if raw == "" {
		return 0, badRequest("%s: missing; give a number between 0 and 100", name)
	}
	p, err := strconv.ParseFloat(raw, 64)
	if err != nil || !(p >= 0 && p <= 100) {
		return 0, badRequest("%s: must be a number between 0 and 100, got %q", name, raw)
	}
	return p, nil
}

// onOff parses a switch: on/off, true/false, 1/0, yes/no.
func onOff(name, raw string) (bool, *apiError) {
	switch strings.ToLower(raw) {
	case "on", "true", "1", "yes":
		return true, nil
	case "off", "false", "0", "no":
		return false, nil
	}
	return false, badRequest("%s: want on or off, got %q", name, raw)
}

// decodeBody decodes a JSON body strictly into v. The body is already
// limited by ServeHTTP; overflowing it is a 413.
func decodeBody(r *http.Request, v any) *apiError {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		if dec.More() {
			return badRequest("body: one JSON object expected, found more after it")
		}
		return nil
	case errors.As(err, &tooBig):
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body: larger than the %d-byte limit", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("body: empty; send a JSON object")
	case errors.As(err, &typeErr):
		return badRequest("%s: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("%s: unknown field", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	}
	return badRequest("body: not valid JSON: %v", err)
}
