package daemon

import (
	"math"

	"golang.org/x/sys/unix"
)

// fdReserve is how many file descriptors lbd keeps from client
// connections for everything else it opens: listeners, health probes
// (one connection each while it runs), the admin listener's connections,
// the access log, state and dump files. Beyond the reserve, each client
// connection may need a second descriptor, its backend connection.
const fdReserve = 128

// fdLimit returns the soft limit on open files, raised first to the hard
// limit (Go's runtime does so at start too; a limit lowered since, with
// prlimit, is raised again here). 0 means unlimited or unknown.
func fdLimit() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if r.Cur < r.Max {
		raised := unix.Rlimit{Cur: r.Max, Max: r.Max}
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			r.Cur = r.Max
		}
	}
	if r.Cur == unix.RLIM_INFINITY || r.Cur > math.MaxInt32 {
		return 0
	}
	return r.Cur
}

// connectionCap is admission.max_connections as lbd can honour it with
// nofile descriptors (0: unlimited): at most half of what the reserve
// leaves, since a proxied request holds a client and a backend
// connection. It reports whether the file descriptor limit lowered it.
// configured 0 (no cap of its own) is capped the same way.
func connectionCap(configured int, nofile uint64) (limit int, lowered bool) {
	if nofile == 0 {
		return configured, false
	}
	fit := 1
	if nofile > 2*fdReserve {
		fit = int(nofile-fdReserve) / 2
	}
	if configured == 0 || configured > fit {
		return fit, true
	}
	return configured, false
}
