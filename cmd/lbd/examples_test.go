package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every config under examples/ passes lbd -check as the README runs it,
// from the repository root: the TLS one once its throwaway certificate is
// made by the script the README names.
func TestExamplesPassCheck(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(root, "examples", "*.json"))
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range files {
		names[filepath.Base(f)] = true
	}
	for _, want := range []string{"config.json", "tls.json", "pools.json", "discovery.json", "fleet.json"} {
		require.True(t, names[want], "examples/%s is missing", want)
	}

	// The TLS example names examples/tls/lbd.{crt,key}: make them with the
	// script, in a copy of the tree's examples/ so the test leaves no file behind.
	work := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(work, "examples"), os.DirFS(filepath.Join(root, "examples"))))
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed to make the TLS example's certificate (Debian: apt-get install openssl)")
	}
	out, err := exec.Command("bash", filepath.Join(work, "examples", "tls", "make-cert.sh")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Chdir(work) // the examples' file paths are relative to where lbd runs: the repository root
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			path := filepath.Join("examples", name)
			require.Equal(t, 0, run([]string{"-check", "-config", path}, &stdout, &stderr), "%s", stderr.String())
			require.Equal(t, path+": ok\n", stdout.String())
		})
	}
}

// Without its certificate the TLS example fails -check and says which file is missing.
func TestTLSExampleNeedsItsCertificate(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	work := t.TempDir()
	data, err := os.ReadFile(filepath.Join(root, "examples", "tls.json"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(work, "examples"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(work, "examples", "tls.json"), data, 0o644))
	t.Chdir(work)
	var stdout, stderr bytes.Buffer
	require.Equal(t, 1, run([]string{"-check", "-config", "examples/tls.json"}, &stdout, &stderr))
	require.True(t, strings.Contains(stderr.String(), "examples/tls/lbd.crt"), stderr.String())
}
