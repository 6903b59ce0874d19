package proxy

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// The JSON value encoders the access log (accesslog_json.go) and the tap
// (tap_json.go) share. Each writes what a standard encoder writes, without
// its reflection and allocations: the access log what slog's JSON handler
// writes, the tap what encoding/json writes.

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as slog does: `"` and `\` escaped, \n \r \t by
// name and other controls as \u00XX, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 escaped (they break JSONP), everything else, HTML included, as is.
func appendJSONString(b []byte, s string) []byte { return appendQuoted(b, s, false) }

// appendJSONStringHTML quotes s as encoding/json does: as appendJSONString,
// and also <, > and & (so that the text is safe inside HTML), \b and \f by
// name. A path or a host comes from the client: anything goes.
func appendJSONStringHTML(b []byte, s string) []byte { return appendQuoted(b, s, true) }

func appendQuoted(b []byte, s string, html bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case html && c == '\b':
				b = append(b, '\\', 'b')
			case html && c == '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONFloat writes f as encoding/json does (and slog, which calls it
// for floats): the shortest decimal that reads back as f, in exponent form
// only when very small or large. A figure that is not finite (a cost over
// a zero weight) is null.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 -> e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
