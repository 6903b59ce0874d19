// Package lbd_test holds the tests of what the repository ships besides
// Go code: the README's commands (readme_test.go) and the packaging
// (packaging_test.go: Dockerfile, systemd unit, Kubernetes manifests,
// make release).
package lbd_test

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The README's shell blocks that a test runs are fenced as
//
//	```sh run=NAME
//
// (GitHub shows them as plain sh). The blocks of one NAME form one bash
// script, run in README order with `set -euo pipefail`, so a command that
// exits non-zero fails the test with its README line; curl is run with
// --fail-with-body, so an HTTP error fails too. Plain ```sh blocks and
// indented commands are for reading only.
//
// What the test changes, and nothing else:
//   - ports: every :3030, :3031, :8081-:8089 and :8443 in the commands, and
//     in the copy of examples/ the script runs against, becomes a port the
//     kernel just handed out (one set per script);
//   - the script runs in a fresh directory holding that examples/ copy and
//     bin/ (shared by the scripts); `make` runs the repository's Makefile
//     with BIN=./bin, so `make build` fills that bin/;
//   - the script "demo" runs against `bin/lbd -demo`, started by the test
//     with those ports (the README's first command, `go run ./cmd/lbd -demo`,
//     in the foreground).
//
// Background jobs a script starts must be gone when it ends (the README
// stops them with `kill $(jobs -p)`), and lbd's -pidfile with them.

var (
	runFence = regexp.MustCompile("^```sh run=([a-z0-9-]+)\\s*$")
	portRe   = regexp.MustCompile(`:(3030|3031|808[0-9]|8443)\b`)
)

// readmeScripts returns each script's README lines by line number (1-based)
// and the scripts' names in README order.
func readmeScripts(t *testing.T, readme []string) (map[string]map[int]string, []string) {
	t.Helper()
	scripts := map[string]map[int]string{}
	var order []string
	cur := ""
	for i, line := range readme {
		switch {
		case cur != "" && strings.HasPrefix(line, "```"):
			cur = ""
		case cur != "":
			scripts[cur][i+1] = line
		default:
			if m := runFence.FindStringSubmatch(line); m != nil {
				cur = m[1]
				if scripts[cur] == nil {
					scripts[cur] = map[int]string{}
					order = append(order, cur)
				}
			}
		}
	}
	require.Empty(t, cur, "README.md: a run= block is not closed")
	return scripts, order
}

// freePort asks the kernel for a free loopback port.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// ports maps each README port to a fresh one.
type ports map[string]string

func (p ports) rewrite(s string) string {
	return portRe.ReplaceAllStringFunc(s, func(m string) string { return ":" + p[m[1:]] })
}

func newPorts(t *testing.T) ports {
	p := ports{"3030": "", "3031": "", "8443": ""}
	for i := range 10 {
		p[strconv.Itoa(8080+i)] = ""
	}
	for k := range p {
		p[k] = freePort(t)
	}
	return p
}

// copyExamples copies the repository's examples/ into dir with the ports rewritten.
func copyExamples(t *testing.T, root, dir string, p ports) {
	t.Helper()
	src := filepath.Join(root, "examples")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		dst := filepath.Join(dir, "examples", rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".json") {
			data = []byte(p.rewrite(string(data)))
		}
		return os.WriteFile(dst, data, info.Mode().Perm())
	})
	require.NoError(t, err)
}

// buildLBD builds bin/lbd into dir/bin for the demo script.
func buildLBD(t *testing.T, root, bin string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "lbd"), "./cmd/lbd")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// scriptEnv is the environment the README's commands run in: the test's,
// less what would change what lbd and make do.
func scriptEnv(root string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LB_PORT", "LB_ADMIN_ADDR", "LB_ADMIN_TOKEN", "NOTIFY_SOCKET", "MAKEFLAGS", "MFLAGS", "MAKELEVEL":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LBD_REPO="+root)
}

// preamble is the script's line 1 (the README's title line, never a
// command), so that $LINENO is the README's line number.
// The ERR trap names the README line of the failing command, also when it
// fails inside the curl or make wrapper (the outermost frame's line).
const preamble = `set -Eeuo pipefail; ` +
	`_fail() { local rc=$? n=${#BASH_LINENO[@]}; echo "README.md:${BASH_LINENO[n-2]}: exit $rc: $BASH_COMMAND" >&2; }; trap _fail ERR; ` +
	`curl() { command curl -S --fail-with-body --max-time 60 "$@"; }; ` +
	`make() { command make -C "$LBD_REPO" BIN="$PWD/bin" "$@"; }`

// script renders a script: the README's lines at their line numbers, blank elsewhere.
func script(lines map[int]string, p ports) string {
	last := slices.Max(slicesKeys(lines))
	var b strings.Builder
	b.WriteString(preamble + "\n")
	for n := 2; n <= last; n++ {
		b.WriteString(p.rewrite(lines[n]) + "\n")
	}
	return b.String()
}

func slicesKeys(m map[int]string) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// groupGone reports whether no process of the group is left.
func groupGone(pgid int) bool {
	return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

// runScript runs one script in dir and fails the test with its output if
// a command fails or its background jobs outlive it.
func runScript(t *testing.T, name, body, dir, root string) {
	t.Helper()
	path := filepath.Join(dir, name+".sh")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	outPath := filepath.Join(dir, name+".out")
	out, err := os.Create(outPath)
	require.NoError(t, err)
	defer out.Close()
	cmd := exec.Command("bash", path)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, scriptEnv(root), out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its jobs stay in its group
	require.NoError(t, cmd.Start())
	pgid := cmd.Process.Pid
	t.Cleanup(func() { // whatever is left if the script failed half-way
		if !groupGone(pgid) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(4 * time.Minute):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		err = <-done
		err = fmt.Errorf("still running after 4 minutes: %w", err)
	}
	if err != nil {
		data, _ := os.ReadFile(outPath)
		t.Fatalf("README script %q failed: %v\n%s", name, err, tail(string(data), 80))
	}
	deadline := time.Now().Add(30 * time.Second)
	for !groupGone(pgid) {
		if time.Now().After(deadline) {
			t.Fatalf("README script %q left background processes running: the README must stop what it starts", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// startDemo runs bin/lbd -demo on the script's ports until the test ends.
func startDemo(t *testing.T, bin, dir string, p ports) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "demo.log"))
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(bin, "lbd"), "-demo", "-listen", "127.0.0.1:"+p["3030"], "-admin", "127.0.0.1:"+p["3031"])
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
	})
	readyz := "http://127.0.0.1:" + p["3031"] + "/readyz"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(readyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(dir, "demo.log"))
			t.Fatalf("lbd -demo not ready within 30s:\n%s", tail(string(data), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readREADME(t *testing.T) (root string, lines []string) {
	t.Helper()
	root, err := os.Getwd()
	require.NoError(t, err)
	f, err := os.Open(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	return root, lines
}

// The README's quick start, walkthrough, admin and TLS commands work as
// written (see the convention above).
func TestREADMECommandsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs the README's commands")
	}
	for _, tool := range []string{"bash", "curl", "make", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's commands need %s (Debian: apt-get install %s)", tool, tool)
		}
	}
	root, lines := readREADME(t)
	scripts, order := readmeScripts(t, lines)
	require.Equal(t, []string{"demo", "walkthrough", "tls"}, order, "the scripts this test knows how to set up")
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	buildLBD(t, root, bin)
	for _, name := range order {
		dir := filepath.Join(work, name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.Symlink(bin, filepath.Join(dir, "bin")))
		p := newPorts(t)
		copyExamples(t, root, dir, p)
		if name == "demo" {
			startDemo(t, bin, dir, p)
		}
		runScript(t, name, script(scripts[name], p), dir, root)
		if name == "walkthrough" {
			_, err := os.Stat(filepath.Join(dir, "lbd.pid"))
			require.ErrorIs(t, err, os.ErrNotExist, "lbd removed its -pidfile when the README stopped it")
		}
	}
}

// The first screen keeps the two commands a fresh machine needs, and
// they are what the Makefile runs.
func TestREADMEFirstScreen(t *testing.T) {
	root, lines := readREADME(t)
	var cmds []string
	for _, line := range lines {
		if strings.HasPrefix(line, "```") || line == "---" {
			break
		}
		if strings.HasPrefix(line, "    ") {
			cmd, _, _ := strings.Cut(strings.TrimSpace(line), "#")
			cmds = append(cmds, strings.TrimSpace(cmd))
		}
	}
	require.Equal(t, []string{"go run ./cmd/lbd -demo", "make test"}, cmds)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	require.Regexp(t, `(?m)^run:.*\n\t\$\(GO\) run \./cmd/lbd -demo$`, string(mk))
	require.Regexp(t, `(?m)^test:`, string(mk))
}

func TestREADMEScriptParsing(t *testing.T) {
	lines := []string{"# title", "```sh run=a", "echo 1 :3030", "```", "text", "```sh", "not run", "```", "```sh run=a", "echo 2", "```"}
	scripts, order := readmeScripts(t, lines)
	require.Equal(t, []string{"a"}, order)
	require.Equal(t, map[int]string{3: "echo 1 :3030", 10: "echo 2"}, scripts["a"])
	s := script(scripts["a"], ports{"3030": "40000"})
	got := strings.Split(s, "\n")
	require.Equal(t, "echo 1 :40000", got[2], "line 3 of the script is README line 3")
	require.Equal(t, "echo 2", got[9])
}
