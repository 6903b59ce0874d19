package config

import (
	"maps"
	"net/url"
	"slices"
	"strings"
)

// tracing checks the tracing section; empty fields are left to the
// environment and are not judged here (package tracing reads them).
func (k *checker) tracing(t *Tracing) {
	if t == nil {
		return
	}
	if t.Endpoint != "" {
		k.tracingEndpoint("tracing.endpoint", t.Endpoint)
	}
	if t.Protocol != "" {
		k.oneOf("tracing.protocol", t.Protocol, TracingProtocols...)
	}
	if t.SampleRatio != nil {
		k.floatIn("tracing.sample_ratio", *t.SampleRatio, 0, 1)
	}
	if strings.ContainsFunc(t.ServiceName, isControl) {
		k.add("tracing.service_name", "must not contain control characters, got %q", t.ServiceName)
	}
	for _, name := range slices.Sorted(maps.Keys(t.Headers)) {
		path := memberPath("tracing.headers", name)
		switch {
		case name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }):
			k.add(path, "%q is not a valid header name (letters, digits and !#$%%&'*+-.^_`|~ only)", name)
		case strings.ContainsFunc(t.Headers[name], isControl):
			k.add(path, "the value must not contain control characters (line breaks, tabs)")
		}
	}
}

// tracingEndpoint checks a collector base URL: http or https, a host, and
// nothing a base URL cannot carry (a query, a fragment, credentials, which
// belong in tracing.headers).
func (k *checker) tracingEndpoint(path, s string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		k.add(path, "%q is not a URL such as \"http://127.0.0.1:4318\"", s)
	case u.Scheme != "http" && u.Scheme != "https":
		k.add(path, "must be an http or https URL such as \"http://127.0.0.1:4318\", got %q", s)
	case u.Host == "":
		k.add(path, "needs a host, as in \"http://127.0.0.1:4318\", got %q", s)
	case u.User != nil:
		k.add(path, "must not carry credentials; send them in tracing.headers (an Authorization header)")
	case u.RawQuery != "" || u.Fragment != "":
		k.add(path, "is a base URL and takes no query or fragment, got %q", s)
	}
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }
