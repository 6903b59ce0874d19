package proxy

import (
	"strconv"
	"time"
)

// AppendJSON appends e as JSON, the shape its struct tags give (and
// encoding/json would write): the tap encodes every event it sends on the
// request goroutine, and encoding/json's reflection costs about a tenth of
// a proxied request, which is more than the tap may take from the data
// plane. TestTapJSONMatchesEncodingJSON holds the two to the same output.
func (e *TapEvent) AppendJSON(b []byte) []byte {
	b = append(b, `{"req_id":`...)
	b = appendJSONStringHTML(b, e.ReqID)
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = appendStringField(b, `",`, "method", e.Method)
	b = appendStringField(b, ",", "host", e.Host)
	b = appendStringField(b, ",", "path", e.Path)
	b = appendStringField(b, ",", "client", e.Client)
	b = appendStringField(b, ",", "pool", e.Pool)
	b = appendStringField(b, ",", "route", e.Route)
	b = appendStringField(b, ",", "policy", e.Policy)
	if e.By != "" {
		b = appendStringField(b, ",", "by", e.By)
	}
	b = appendStringField(b, ",", "backend", e.Backend)
	if e.Name != "" {
		b = appendStringField(b, ",", "name", e.Name)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"latency_ms":`...)
	b = appendJSONFloat(b, e.LatencyMs)
	b = appendStringField(b, ",", "reject", e.Reject)
	if len(e.Sampled) > 0 {
		b = append(b, `,"sampled":[`...)
		for i, s := range e.Sampled {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONStringHTML(b, s)
		}
		b = append(b, ']')
	}
	b = append(b, `,"candidates":`...)
	if e.Candidates == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range e.Candidates {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.Candidates[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"attempts":`...)
	if e.Attempts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range e.Attempts {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.Attempts[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (c *TapCandidate) appendJSON(b []byte) []byte {
	b = appendStringField(b, "{", "backend", c.Backend)
	if c.Name != "" {
		b = appendStringField(b, ",", "name", c.Name)
	}
	b = appendBoolField(b, "eligible", c.Eligible)
	if c.Reason != "" {
		b = appendStringField(b, ",", "reason", c.Reason)
	}
	b = appendStringField(b, ",", "state", c.State)
	if c.Cost != 0 {
		b = append(b, `,"cost":`...)
		b = appendJSONFloat(b, c.Cost)
	}
	b = append(b, `,"ewma_ms":`...)
	b = appendJSONFloat(b, c.EWMAMs)
	b = append(b, `,"inflight":`...)
	b = strconv.AppendInt(b, c.Inflight, 10)
	b = append(b, `,"weight":`...)
	b = strconv.AppendInt(b, int64(c.Weight), 10)
	b = append(b, `,"warm_factor":`...)
	b = appendJSONFloat(b, c.WarmFactor)
	if c.Sampled {
		b = appendBoolField(b, "sampled", true)
	}
	if c.Chosen {
		b = appendBoolField(b, "chosen", true)
	}
	if c.Canary {
		b = appendBoolField(b, "canary", true)
	}
	return append(b, '}')
}

func (a *TapAttempt) appendJSON(b []byte) []byte {
	b = appendStringField(b, "{", "backend", a.Backend)
	if a.Name != "" {
		b = appendStringField(b, ",", "name", a.Name)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(a.Status), 10)
	b = append(b, `,"latency_ms":`...)
	b = appendJSONFloat(b, a.LatencyMs)
	if a.Error != "" {
		b = appendStringField(b, ",", "error", a.Error)
	}
	return append(b, '}')
}

// appendStringField appends sep"key":"value".
func appendStringField(b []byte, sep, key, v string) []byte {
	b = append(b, sep...)
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `":`...)
	return appendJSONStringHTML(b, v)
}

func appendBoolField(b []byte, key string, v bool) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendBool(b, v)
}
