package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/lbd/lbd/internal/loadgen"
)

// killOptions are the knobs of the kill scenario.
type killOptions struct {
	lbd, backend string
	concurrency  int
	before       time.Duration // load before the kill
	after        time.Duration // load after it
	runs         int
}

// killRun is what one kill run measured.
type killRun struct {
	res          *loadgen.Result
	clientErrors int64
	retries      float64
	downState    string // the killed backend's state and breaker at the end
	logPath      string // lbd's log, kept when a client saw an error
}

// backendProc is one lbd-backend child process.
type backendProc struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startBackendProc starts bin on a kernel-chosen loopback port and reads the
// URL it prints.
func startBackendProc(ctx context.Context, bin, name string) (*backendProc, error) {
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-name", name, "-latency", "1ms", "-jitter", "0s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	b := &backendProc{cmd: cmd, done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			urls <- strings.TrimSpace(sc.Text())
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { _ = cmd.Wait(); close(b.done) }()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case b.url = <-urls:
		return b, nil
	case <-b.done:
		return nil, fmt.Errorf("%s exited at start", bin)
	case <-t.C:
	case <-ctx.Done():
	}
	b.kill()
	return nil, fmt.Errorf("%s did not print its URL within 10s", bin)
}

// kill sends SIGKILL: no graceful close, the kernel drops its connections.
func (b *backendProc) kill() {
	_ = b.cmd.Process.Kill()
	<-b.done
}

// killScenario: three backends as separate processes, lbd at its defaults,
// a closed-loop GET load; one backend is SIGKILLed mid-load. Every request
// that met it — in flight when it died, or sent to its closed port before
// lbd took it out — must be answered by another backend: 0 client-visible
// errors (issue 19, item 6).
func killScenario(ctx context.Context, o killOptions, logger *log.Logger) ([]killRun, error) {
	var out []killRun
	for i := range o.runs {
		run, err := killOnce(ctx, o)
		if err != nil {
			return out, fmt.Errorf("run %d: %w", i+1, err)
		}
		logger.Printf("run %d: %d requests, %d client-visible errors; statuses %v, lbd refusals %v, transport errors %v, retries %.0f, killed backend %s",
			i+1, run.res.Sent, run.clientErrors, run.res.Status, run.res.Reject, run.res.ErrorKinds, run.retries, run.downState)
		if run.logPath != "" {
			logger.Printf("run %d: lbd's log is kept in %s", i+1, run.logPath)
		}
		out = append(out, run)
	}
	return out, nil
}

func killOnce(ctx context.Context, o killOptions) (_ killRun, err error) {
	var procs []*backendProc
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	var urls []string
	for i := range 3 {
		p, err := startBackendProc(ctx, o.backend, fmt.Sprintf("b%d", i+1))
		if err != nil {
			return killRun{}, err
		}
		procs, urls = append(procs, p), append(urls, p.url)
	}
	dir, err := tempDir()
	if err != nil {
		return killRun{}, err
	}
	keep := false // lbd's log is kept when clients saw errors
	defer func() {
		if !keep {
			removeUnlessFailed(dir, &err)
		}
	}()
	p, err := startLBD(ctx, o.lbd, dir, baseConfig(urls))
	if err != nil {
		return killRun{}, err
	}
	defer p.Stop()
	var wg sync.WaitGroup
	var res *loadgen.Result
	var loadErr error
	wg.Go(func() {
		res, loadErr = loadgen.Run(ctx, loadgen.Config{
			URL: p.DataURL + "/", Concurrency: o.concurrency, N: loadgen.MaxN, Duration: o.before + o.after,
		})
	})
	if err := pause(ctx, o.before); err != nil {
		return killRun{}, err
	}
	procs[2].kill()
	wg.Wait()
	if loadErr != nil {
		return killRun{}, loadErr
	}
	run := killRun{res: res, clientErrors: clientErrors(res)}
	if run.retries, err = p.Metric(ctx, "lbd_retries_total"); err != nil {
		return run, err
	}
	bs, err := backends(ctx, p)
	if err != nil {
		return run, err
	}
	run.downState = bs[urls[2]].State + ", breaker " + bs[urls[2]].Breaker
	if run.clientErrors > 0 {
		keep, run.logPath = true, p.LogPath
	}
	return run, nil
}

func printKill(w io.Writer, o killOptions, runs []killRun) {
	fmt.Fprintf(w, "3 backends (lbd-backend processes, 1ms), %d GET clients closed loop; b3 SIGKILLed after %v, load for %v more; lbd defaults\n\n",
		o.concurrency, o.before, o.after)
	fmt.Fprintln(w, "| run | requests | client-visible errors | statuses | retries | killed backend at the end |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	var total, errs int64
	for i, r := range runs {
		total += r.res.Sent
		errs += r.clientErrors
		fmt.Fprintf(w, "| %d | %d | %d | %v | %.0f | %s |\n", i+1, r.res.Sent, r.clientErrors, r.res.Status, r.retries, r.downState)
	}
	fmt.Fprintf(w, "\n%d runs: %d client-visible errors in %d requests\n", len(runs), errs, total)
}
