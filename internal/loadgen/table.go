package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints r for a human: counts, rates, distributions and a
// latency table.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := r.Mode
	switch r.Mode {
	case "open":
		mode = fmt.Sprintf("open loop, %.4g/s", r.TargetRate)
	case "closed":
		mode = fmt.Sprintf("closed loop, %d workers", r.Concurrency)
	}
	fmt.Fprintf(tw, "target\t%s (%s)\n", r.URL, mode)
	fmt.Fprintf(tw, "elapsed\t%v\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(tw, "requests\tsent %d  completed %d  errors %d  dropped %d  late %d\n",
		r.Sent, r.Completed, r.Errors, r.Dropped, r.Late)
	fmt.Fprintf(tw, "throughput\t%.1f/s  goodput (2xx) %.1f/s\n", r.Rate, r.Goodput)
	fmt.Fprintf(tw, "status\t%s\n", joinCounts(r.Status, func(k int) string { return fmt.Sprint(k) }))
	if len(r.Reject) > 0 {
		fmt.Fprintf(tw, "rejected\t%s\n", joinCounts(r.Reject, func(k string) string { return k }))
	}
	fmt.Fprintf(tw, "backends\t%s\n", joinCounts(r.Backend, func(k string) string { return k }))
	if len(r.ErrorKinds) > 0 {
		fmt.Fprintf(tw, "errors\t%s\n", joinCounts(r.ErrorKinds, func(k string) string { return k }))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "latency\tcount\tmin\tp50\tp90\tp99\tmax\t")
	for _, row := range []struct {
		name string
		p    Percentiles
	}{{"all", r.Latency}, {"2xx", r.Latency2xx}} {
		p := row.p
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", row.name, p.Count,
			fmtDur(p.Min), fmtDur(p.P50), fmtDur(p.P90), fmtDur(p.P99), fmtDur(p.Max))
	}
	return tw.Flush()
}

// joinCounts renders "k: n  k: n" sorted by key, with each share of the
// total so a distribution across backends reads at a glance.
func joinCounts[K cmp.Ordered](m map[K]int64, name func(K) string) string {
	if len(m) == 0 {
		return "-"
	}
	var total int64
	for _, v := range m {
		total += v
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d (%.1f%%)", name(k), m[k], 100*float64(m[k])/float64(total)))
	}
	return strings.Join(parts, "  ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
