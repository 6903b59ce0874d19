package lbd_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct {
	cmd  string // FROM, RUN, ... upper case
	args string
}

// parseDockerfile reads the instructions of a Dockerfile: comments and
// blank lines dropped, lines ending in a backslash joined to the next.
// (No engine runs here, so the test reads the file the way the builder's
// parser does for what it checks; BuildKit's own parser is a module of
// its own, much larger than these lines.)
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	require.Zero(t, cur.Len(), "the Dockerfile ends in a continuation")
	return out
}

// stages splits the instructions at each FROM.
func stages(ins []instruction) [][]instruction {
	var out [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out
}

func execForm(t *testing.T, s string) []string {
	t.Helper()
	var v []string
	require.NoError(t, json.Unmarshal([]byte(s), &v), "exec form (JSON array) expected: %s", s)
	return v
}

// requireStatic fails unless path is an ELF executable of machine m with
// no dynamic loader and no shared library: it runs on distroless static
// or scratch.
func requireStatic(t *testing.T, path string, m elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, m, f.Machine, path)
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "%s asks for a dynamic loader", path)
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs, "%s links shared libraries", path)
}

// waitHealthy polls url until it answers 200.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		require.False(t, time.Now().After(deadline), "%s not healthy within 30s", url)
		time.Sleep(50 * time.Millisecond)
	}
}

// startBinary runs bin with args and env until stop is called or the test ends.
func startBinary(t *testing.T, bin string, env []string, args ...string) (stop func() error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(scriptEnv(""), env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		if err != nil {
			t.Logf("%s:\n%s", bin, tail(logs.String(), 30))
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// The Dockerfile builds a static binary in one stage and runs it as a
// non-root user on a libc-free image, with a HEALTHCHECK the image can
// run. No engine runs here: the test checks its structure, runs its build
// command outside Docker, and starts the result as the image would.
func TestDockerfile(t *testing.T) {
	root, _ := readREADME(t)
	st := stages(parseDockerfile(t, filepath.Join(root, "Dockerfile")))
	require.Len(t, st, 2, "multi-stage: a build stage and the runtime image")
	build, final := st[0], st[1]

	from := strings.Fields(build[0].args)
	require.Len(t, from, 3, "FROM image AS name")
	require.Equal(t, "AS", strings.ToUpper(from[1]))
	stageName := from[2]
	m := regexp.MustCompile(`^golang:(\d+)\.(\d+)`).FindStringSubmatch(from[0])
	require.NotNil(t, m, "the build stage is an official Go image: %s", from[0])
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	want := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(string(gomod))
	imgMinor, _ := strconv.Atoi(m[2])
	modMinor, _ := strconv.Atoi(want[2])
	require.Equal(t, want[1], m[1])
	require.GreaterOrEqual(t, imgMinor, modMinor, "the Go image is at least go.mod's Go")

	var buildCmd, version string
	for _, in := range build {
		if in.cmd == "ARG" && strings.HasPrefix(in.args, "VERSION=") {
			version = strings.TrimPrefix(in.args, "VERSION=")
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildCmd = in.args
		}
	}
	require.NotEmpty(t, version, "ARG VERSION with a default")
	require.Contains(t, buildCmd, "CGO_ENABLED=0", "static: no cgo")
	require.Contains(t, buildCmd, "-trimpath")
	require.Contains(t, buildCmd, "-X main.version=${VERSION}")
	out := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(buildCmd)
	require.NotNil(t, out)

	require.Regexp(t, `^(gcr\.io/distroless/static\S*|scratch)$`, final[0].args, "a runtime image without libc or shell")
	var user, entry, healthcheck string
	var cmdArgs []string
	var exposed []string
	copied := map[string]string{} // image path -> repository path
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			e := execForm(t, in.args)
			require.Len(t, e, 1)
			entry = e[0]
		case "CMD":
			cmdArgs = execForm(t, in.args)
		case "HEALTHCHECK":
			_, hc, ok := strings.Cut(in.args, "CMD ")
			require.True(t, ok, "HEALTHCHECK ... CMD [...]")
			healthcheck = hc
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "COPY":
			f := strings.Fields(in.args)
			if strings.HasPrefix(f[0], "--from=") {
				require.Equal(t, "--from="+stageName, f[0])
				require.Equal(t, out[1], f[1], "the runtime image takes the binary the build stage made")
				copied[f[2]] = "BINARY"
			} else {
				copied[f[1]] = f[0]
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	require.NoError(t, err, "USER is numeric so that runAsNonRoot can check it: %q", user)
	require.NotZero(t, n, "USER is not root")
	require.Equal(t, "BINARY", copied[entry], "ENTRYPOINT runs the copied binary")
	require.Contains(t, exposed, "3030")

	// The build command, outside Docker, from the repository root.
	bin := filepath.Join(t.TempDir(), "lbd")
	run := strings.ReplaceAll(strings.Replace(buildCmd, out[0], "-o "+bin, 1), "${VERSION}", "docker-test")
	c := exec.Command("bash", "-c", run)
	c.Dir = root
	c.Env = scriptEnv(root)
	b, err := c.CombinedOutput()
	require.NoError(t, err, "%s\n%s", run, b)
	requireStatic(t, bin, elf.EM_X86_64)
	v, err := exec.Command(bin, "-version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(v), "lbd docker-test "), "%s", v)

	// Start it as the image does (ENTRYPOINT + CMD, the copied config),
	// then run the HEALTHCHECK against it.
	var args []string
	for _, a := range cmdArgs {
		if src, ok := copied[a]; ok && src != "BINARY" {
			a = filepath.Join(root, src)
		}
		args = append(args, a)
	}
	p := newPorts(t)
	stop := startBinary(t, bin, []string{"LB_PORT=" + p["3030"], "LB_ADMIN_ADDR=127.0.0.1:" + p["3031"]}, args...)
	hc := execForm(t, healthcheck)
	require.Equal(t, entry, hc[0], "HEALTHCHECK runs the image's own binary (no shell or curl there)")
	require.Contains(t, hc[len(hc)-1], "/healthz")
	waitHealthy(t, "http://127.0.0.1:"+p["3031"]+"/healthz")
	probe := exec.Command(bin, append(hc[1:len(hc)-1], p.rewrite(hc[len(hc)-1]))...)
	b, err = probe.CombinedOutput()
	require.NoError(t, err, "HEALTHCHECK against the running lbd: %s", b)
	require.NoError(t, stop(), "SIGTERM: exit 0")
	b, err = exec.Command(bin, append(hc[1:len(hc)-1], p.rewrite(hc[len(hc)-1]))...).CombinedOutput()
	require.Error(t, err, "the HEALTHCHECK fails once lbd is gone: %s", b)
}

// unitSettings reads a systemd unit's Key=Value lines by section; keys
// that repeat keep every value.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string][]string{}
	section := ""
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "not Key=Value: %q", line)
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// The unit runs lbd as systemd expects a notify daemon to run, hardened;
// systemd-analyze verifies it and scores its exposure where it exists.
func TestSystemdUnit(t *testing.T) {
	root, _ := readREADME(t)
	unit := filepath.Join(root, "deploy", "systemd", "lbd.service")
	s := unitSettings(t, unit)
	one := func(key string) string {
		t.Helper()
		require.Len(t, s[key], 1, key)
		return s[key][0]
	}
	require.Equal(t, "notify", one("Service.Type"))
	require.Equal(t, "main", one("Service.NotifyAccess"))
	require.Equal(t, "/bin/kill -HUP $MAINPID", one("Service.ExecReload"))
	start := strings.Fields(one("Service.ExecStart"))
	require.Equal(t, []string{"/usr/local/bin/lbd", "-config", "/etc/lbd/config.json"}, start)
	require.Equal(t, "/usr/local/bin/lbd -check -config /etc/lbd/config.json", one("Service.ExecStartPre"))
	for k, v := range map[string]string{
		"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "", "StateDirectory": "lbd",
		"LogsDirectory": "lbd", "ConfigurationDirectory": "lbd", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
	} {
		require.Equal(t, v, one("Service."+k), k)
	}
	require.Equal(t, []string{"@system-service", "~@privileged"}, s["Service.SystemCallFilter"])
	require.Equal(t, "multi-user.target", one("Install.WantedBy"))

	// The config the unit names, as installed from deploy/systemd, passes
	// -check and keeps its files in the unit's own directories.
	cfgData, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", "config.json"))
	require.NoError(t, err)
	var cfg struct {
		StateFile string `json:"state_file"`
		AccessLog struct {
			File string `json:"file"`
		} `json:"access_log"`
	}
	require.NoError(t, json.Unmarshal(cfgData, &cfg))
	require.True(t, strings.HasPrefix(cfg.StateFile, "/var/lib/lbd/"), "state_file in StateDirectory")
	require.True(t, strings.HasPrefix(cfg.AccessLog.File, "/var/log/lbd/"), "access_log.file in LogsDirectory")
	bin := filepath.Join(t.TempDir(), "lbd")
	buildLBD(t, root, filepath.Dir(bin))
	b, err := exec.Command(bin, "-check", "-config", filepath.Join(root, "deploy", "systemd", "config.json")).CombinedOutput()
	require.NoError(t, err, "%s", b)

	lr, err := os.ReadFile(filepath.Join(root, "deploy", "logrotate", "lbd"))
	require.NoError(t, err)
	require.Contains(t, string(lr), "/var/log/lbd/")
	require.Contains(t, string(lr), "--signal=SIGUSR1 --kill-whom=main lbd.service", "logrotate asks lbd to reopen its file")

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit's structure is checked, systemd's own verification is not")
	}
	// verify needs the binaries the unit names to exist: point it at the one just built.
	data, err := os.ReadFile(unit)
	require.NoError(t, err)
	local := filepath.Join(t.TempDir(), "lbd.service")
	require.NoError(t, os.WriteFile(local, bytes.ReplaceAll(data, []byte("/usr/local/bin/lbd"), []byte(bin)), 0o644))
	b, err = exec.Command(analyze, "verify", local).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify: %s", b)
	require.Empty(t, strings.TrimSpace(string(b)), "systemd-analyze verify has something to say")
	// "OK" in systemd's words is an exposure up to 3.9; this unit scores 1.4 on systemd 252.
	b, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", local).CombinedOutput()
	require.NoError(t, err, "systemd-analyze security: exposure above 2.0 (--threshold counts tenths):\n%s", tail(string(b), 5))
	require.Regexp(t, `Overall exposure level for lbd\.service: [0-1]\.\d OK`, string(b))
}

// k8s is a Kubernetes object, as far as these tests read one.
type k8s struct {
	APIVersion string                `yaml:"apiVersion"`
	Kind       string                `yaml:"kind"`
	Metadata   struct{ Name string } `yaml:"metadata"`
	Data       map[string]string     `yaml:"data"`
	Resources  []string              `yaml:"resources"`
	Spec       struct {
		ClusterIP string    `yaml:"clusterIP"`
		Selector  yaml.Node `yaml:"selector"`
		Ports     []k8sPort `yaml:"ports"`
		Template  struct {
			Metadata struct{ Labels map[string]string } `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name      string
					ConfigMap struct{ Name string } `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	Port          int    `yaml:"port"`
	ContainerPort int    `yaml:"containerPort"`
	TargetPort    string `yaml:"targetPort"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Args  []string  `yaml:"args"`
	Ports []k8sPort `yaml:"ports"`
	Env   []struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  k8sProbe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop struct {
			Sleep struct{ Seconds int } `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

func (c k8sContainer) port(name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// The manifests hang together: the probes hit lbd's admin /readyz and
// /healthz, the ConfigMap's config passes lbd -check and discovers the
// headless Service's SRV records, the Services point at named ports that
// exist, and the pod runs as the image's non-root user.
func TestKubernetesManifests(t *testing.T) {
	root, _ := readREADME(t)
	dir := filepath.Join(root, "deploy", "kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	objs := map[string]k8s{} // kind/name
	var kust k8s
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var o k8s
		require.NoError(t, yaml.Unmarshal(data, &o), f)
		require.NotEmpty(t, o.Kind, f)
		if o.Kind == "Kustomization" {
			kust = o
			continue
		}
		require.NotEmpty(t, o.APIVersion, f)
		objs[o.Kind+"/"+o.Metadata.Name] = o
	}
	var listed []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			listed = append(listed, filepath.Base(f))
		}
	}
	require.ElementsMatch(t, listed, kust.Resources, "kustomization.yaml lists every manifest")

	dep, ok := objs["Deployment/lbd"]
	require.True(t, ok)
	pod := dep.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "admin", c.ReadinessProbe.HTTPGet.Port)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "admin", c.LivenessProbe.HTTPGet.Port)
	require.True(t, pod.SecurityContext.RunAsNonRoot)
	require.Equal(t, 65532, pod.SecurityContext.RunAsUser, "the Dockerfile's USER")
	require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.True(t, c.SecurityContext.ReadOnlyRootFilesystem)
	require.Equal(t, []string{"-config", "/etc/lbd/config.json"}, c.Args)
	require.Equal(t, "/etc/lbd", c.VolumeMounts[0].MountPath)
	require.Equal(t, "lbd-config", pod.Volumes[0].ConfigMap.Name)
	tokenFromSecret := false
	for _, e := range c.Env {
		if e.Name == "LB_ADMIN_TOKEN" && e.ValueFrom.SecretKeyRef.Name != "" && e.ValueFrom.SecretKeyRef.Key != "" {
			tokenFromSecret = true
		}
	}
	require.True(t, tokenFromSecret, "the admin listens beyond loopback: LB_ADMIN_TOKEN from a Secret")

	cm, ok := objs["ConfigMap/lbd-config"]
	require.True(t, ok)
	var cfg struct {
		Listen string `json:"listen"`
		Admin  struct {
			Listen string `json:"listen"`
		} `json:"admin"`
		Discovery []struct {
			DNS  string `json:"dns"`
			Type string `json:"type"`
		} `json:"discovery"`
		ShutdownGrace string `json:"shutdown_grace"`
	}
	require.NoError(t, json.Unmarshal([]byte(cm.Data["config.json"]), &cfg))
	require.True(t, strings.HasSuffix(cfg.Listen, ":"+strconv.Itoa(c.port("http"))))
	require.True(t, strings.HasSuffix(cfg.Admin.Listen, ":"+strconv.Itoa(c.port("admin"))))
	grace, err := time.ParseDuration(cfg.ShutdownGrace)
	require.NoError(t, err)
	require.Greater(t, time.Duration(pod.TerminationGracePeriodSeconds)*time.Second,
		grace+time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second, "Kubernetes waits for lbd's drain")

	headless, ok := objs["Service/lbd-backends"]
	require.True(t, ok)
	require.Equal(t, "None", headless.Spec.ClusterIP, "headless: DNS answers with the pods")
	require.Len(t, cfg.Discovery, 1)
	require.Equal(t, "srv", cfg.Discovery[0].Type)
	require.Regexp(t, `^_`+headless.Spec.Ports[0].Name+`\._tcp\.`+headless.Metadata.Name+`\.[a-z0-9-]+\.svc\.cluster\.local$`, cfg.Discovery[0].DNS,
		"discovery looks up the headless Service's SRV records for its named port")

	svc, ok := objs["Service/lbd"]
	require.True(t, ok)
	require.Equal(t, "http", svc.Spec.Ports[0].TargetPort)
	require.NotZero(t, c.port(svc.Spec.Ports[0].TargetPort), "the Service's targetPort names a container port")
	var sel map[string]string
	require.NoError(t, svc.Spec.Selector.Decode(&sel))
	for k, v := range sel {
		require.Equal(t, v, dep.Spec.Template.Metadata.Labels[k], "the Service selects the Deployment's pods")
	}

	// The config itself passes lbd -check.
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(cm.Data["config.json"]), 0o644))
	bin := filepath.Join(t.TempDir(), "lbd")
	buildLBD(t, root, filepath.Dir(bin))
	b, err := exec.Command(bin, "-check", "-config", path).CombinedOutput()
	require.NoError(t, err, "%s", b)
}

// make release builds one static, versioned, trimmed binary per platform
// into DIST with their SHA-256 sums.
func TestMakeRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles lbd for two platforms")
	}
	root, _ := readREADME(t)
	dist := t.TempDir()
	cmd := exec.Command("make", "release", "VERSION=v9.9.9-test", "DIST="+dist)
	cmd.Dir, cmd.Env = root, scriptEnv(root)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	require.NoError(t, err)
	want := map[string]elf.Machine{"lbd-v9.9.9-test-linux-amd64": elf.EM_X86_64, "lbd-v9.9.9-test-linux-arm64": elf.EM_AARCH64}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	require.Len(t, lines, len(want))
	for _, line := range lines {
		sum, name, ok := strings.Cut(line, "  ")
		require.True(t, ok, line)
		m, ok := want[name]
		require.True(t, ok, "unexpected %s", name)
		path := filepath.Join(dist, name)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		h := sha256.Sum256(data)
		require.Equal(t, hex.EncodeToString(h[:]), sum, name)
		requireStatic(t, path, m)
		require.False(t, bytes.Contains(data, []byte(root)), "%s holds the build's paths: -trimpath", name)
	}
	v, err := exec.Command(filepath.Join(dist, "lbd-v9.9.9-test-linux-amd64"), "-version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(v), "lbd v9.9.9-test "), "%s", v)
}
