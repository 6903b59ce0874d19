package daemon

import (
	"log/slog"
	"strings"
)

// ErrAttr is err as a log attribute: "err" with its text when it is one
// problem, "problems" with one string each when it holds several (an
// errors.Join, a config file's problems one per line), so a JSON log line
// carries an array rather than one string with "\n" in it.
func ErrAttr(err error) slog.Attr {
	ps := Problems(err)
	if len(ps) <= 1 {
		return slog.String("err", strings.Join(ps, ""))
	}
	return slog.Any("problems", ps)
}

// Problems splits err into its problems: the errors it joins, each split
// at its line breaks, empty lines left out.
func Problems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}
