package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

func printTable(w io.Writer, o options, rows []row) {
	fmt.Fprintf(w, "normal load: %.0f requests/s open loop for %v per attack (after a ramp of at most %v and %v to settle), timeout %v; attacks: %d connections (header flood %d) started over the first half of the ramp, drip %v, pause %v ±50%%\n\n",
		o.rate, o.duration, o.ramp, o.settle, o.timeout, o.conns, o.floodConns, o.drip, o.pause)
	fmt.Fprintln(w, "| attack | attacking conns open | normal success | p50 | p99 | normal failures | lbd RSS peak | backend failures | refused at accept | lbd's answers to the attackers |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		if r.sent == 0 {
			continue
		}
		open := "-"
		if r.conns > 0 {
			open = fmt.Sprintf("%d / %d", r.open, r.conns)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f%% (%d/%d) | %v | %v | %s | %s | %.0f | %.0f | %s |\n",
			r.name, open, r.success(), r.ok, r.sent, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond),
			r.failed, mib(r.rssPeak), r.failures, r.refused, answers(r))
	}
}

func mib(b float64) string {
	if b == 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f MiB", b/(1<<20))
}

func answers(r row) string {
	if r.conns == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.answers)) {
		parts = append(parts, fmt.Sprintf("%s x%d", k, r.answers[k]))
	}
	parts = append(parts, fmt.Sprintf("%d connections, %d ended by lbd", r.dialed, r.ended))
	return strings.Join(parts, ", ")
}
