package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/internal/synth"
)

// testCA issues certificates for the TLS tests; nothing is committed, every
// key is made fresh (ECDSA P-256: fast to generate).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lbd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

// leaf is an issued certificate and its key, in PEM.
type leaf struct {
	certPEM, key []byte
	tlsCert      tls.Certificate
}

// issue signs a server certificate for 127.0.0.1 and the given DNS names,
// valid from notBefore to notAfter.
func (ca *testCA) issue(t *testing.T, serial int64, notBefore, notAfter time.Time, dns ...string) leaf {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "lbd test server"},
		NotBefore: notBefore, NotAfter: notAfter, DNSNames: dns,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	l := leaf{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
	l.tlsCert, err = tls.X509KeyPair(l.certPEM, l.key)
	require.NoError(t, err)
	return l
}

func (ca *testCA) valid(t *testing.T, serial int64, dns ...string) leaf {
	return ca.issue(t, serial, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), dns...)
}

// write puts a certificate and a key into files and returns their paths.
func write(t *testing.T, dir string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	return certFile, keyFile
}

// httpsGet makes one request on a new connection, offering the ALPN
// protocols alpn, and returns the response with the serial number lbd served.
func httpsGet(t *testing.T, pool *x509.CertPool, url string, alpn ...string) (*http.Response, int64) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: alpn}, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(true)
	tr.Protocols.SetHTTP2(slices.Contains(alpn, "h2"))
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	return resp, resp.TLS.PeerCertificates[0].SerialNumber.Int64()
}

func TestTLSOffersH2AndHTTP1ByALPN(t *testing.T) {
	ca := newTestCA(t)
	pair := ca.valid(t, 10)
	certFile, keyFile := write(t, t.TempDir(), pair.certPEM, pair.key)
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	})
	url := "https://" + l.d.DataAddr() + "/"

	resp, serial := httpsGet(t, ca.pool, url, "h2", "http/1.1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "h2", resp.TLS.NegotiatedProtocol, "ALPN picks h2 first")
	require.Equal(t, "HTTP/2.0", resp.Proto)
	require.Equal(t, int64(10), serial)
	require.Equal(t, "https", resp.Header.Get("X-Seen-Forwarded-Proto"))
	require.Equal(t, "HTTP/1.1", resp.Header.Get("X-Seen-Proto"), "the backend still gets its own protocol (http1)")

	resp, _ = httpsGet(t, ca.pool, url, "http/1.1")
	require.Equal(t, "http/1.1", resp.TLS.NegotiatedProtocol)
	require.Equal(t, "HTTP/1.1", resp.Proto)
	require.Equal(t, "a", resp.Header.Get("X-Backend"))
}

func TestTLSReloadKeepsTheOldPairWhenTheNewOneIsBad(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	first := ca.valid(t, 1)
	certFile, keyFile := write(t, dir, first.certPEM, first.key)
	l := startLBD(t, startBackends(t, synth.Knobs{Name: "a"}), func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	})
	url := "https://" + l.d.DataAddr() + "/"
	now := time.Now()
	expired := ca.issue(t, 2, now.Add(-48*time.Hour), now.Add(-time.Hour))
	early := ca.issue(t, 2, now.Add(time.Hour), now.Add(48*time.Hour))
	next := ca.valid(t, 3)

	cases := []struct {
		name      string
		cert, key []byte
		err       string // "" when the reload must succeed
		serving   int64  // the serial served afterwards
	}{
		{"expired", expired.certPEM, expired.key, "expired at", 1},
		{"not yet valid", early.certPEM, early.key, "not valid before", 1},
		{"key of another certificate", next.certPEM, first.key, "private key does not match public key", 1},
		{"not PEM", []byte("garbage"), first.key, "failed to find any PEM data", 1},
		{"good", next.certPEM, next.key, "", 3},
		{"bad again after a good one", expired.certPEM, expired.key, "expired at", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			write(t, dir, c.cert, c.key)
			err := l.reload(t, l.d.owner.fileConfig())
			if c.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, c.err)
			}
			_, serial := httpsGet(t, ca.pool, url, "h2", "http/1.1")
			require.Equal(t, c.serving, serial, "the certificate served after the reload")
		})
	}
}

func TestCheckValidatesTLSAndCAFiles(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	now := time.Now()
	good := ca.valid(t, 1)
	expired := ca.issue(t, 2, now.Add(-48*time.Hour), now.Add(-time.Hour))
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.pem, 0o600))

	cases := []struct {
		name      string
		cert, key []byte
		caFile    string
		code      int
		want      string
	}{
		{"good", good.certPEM, good.key, caFile, 0, "ok"},
		{"expired", expired.certPEM, expired.key, caFile, 1, "tls.cert_file: certificate " + filepath.Join(dir, "tls.crt") + " (for lbd test server) expired at"},
		{"mismatched", good.certPEM, expired.key, caFile, 1, "private key does not match public key"},
		{"missing CA file", good.certPEM, good.key, filepath.Join(dir, "nope.pem"), 1, "backends[0].ca_file: open "},
		{"CA file without PEM", good.certPEM, good.key, filepath.Join(dir, "tls.key.txt"), 1, "no PEM certificate in it"},
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.key.txt"), []byte("not pem"), 0o600))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			certFile, keyFile := write(t, dir, c.cert, c.key)
			cfg := config.Default()
			cfg.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
			cfg.Backends = []config.Backend{{URL: "https://127.0.0.1:8443", Weight: 1, Protocol: "h2", CAFile: c.caFile}}
			var lines []string
			for _, p := range CheckFiles(cfg, time.Now()) {
				lines = append(lines, p.String())
			}
			if c.code == 0 {
				require.Empty(t, lines)
				return
			}
			require.NotEmpty(t, lines)
			require.Contains(t, strings.Join(lines, "\n"), c.want)
		})
	}
}

func TestNewRefusesABadCertificate(t *testing.T) {
	ca := newTestCA(t)
	a, b := ca.valid(t, 1), ca.valid(t, 2)
	certFile, keyFile := write(t, t.TempDir(), a.certPEM, b.key)
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	_, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorContains(t, err, "tls: certificate "+certFile)
}

func TestH2CListenerServesPriorKnowledgeAndIgnoresUpgrade(t *testing.T) {
	seen := make(chan http.Header, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("X-Seen-Proto", r.Proto)
	}))
	t.Cleanup(backend.Close)
	l := startLBD(t, nil, func(c *config.Config) {
		c.H2C = true
		c.Backends = []config.Backend{{URL: backend.URL, Weight: 1, Protocol: "http1"}}
	})

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get(l.url + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "HTTP/2.0", resp.Proto, "h2c with prior knowledge")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	<-seen

	req, err := http.NewRequest(http.MethodGet, l.url+"/", nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the upgrade offer is ignored, not refused")
	require.Equal(t, "HTTP/1.1", resp.Proto)
	h := <-seen
	require.Empty(t, h.Get("Upgrade"), "the offer does not reach the backend")
	require.Empty(t, h.Get("Http2-Settings"))
}

func TestH2CUpstreamReachesAnH2COnlyBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: synth.New(synth.Knobs{Name: "h2c-only"}), Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true) // and not HTTP/1: an http1 request fails
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String()

	for _, c := range []struct {
		protocol string
		status   int
	}{{"h2c", http.StatusOK}, {"http1", http.StatusBadGateway}} {
		t.Run(c.protocol, func(t *testing.T) {
			l := startLBD(t, nil, func(cfg *config.Config) {
				cfg.Backends = []config.Backend{{URL: url, Weight: 1, Protocol: c.protocol}}
				cfg.Retries.Max = 0
			})
			resp, _ := l.get(t, "/")
			require.Equal(t, c.status, resp.StatusCode)
			if c.status == http.StatusOK {
				require.Equal(t, "HTTP/2.0", resp.Header.Get("X-Seen-Proto"))
				require.Equal(t, "h2c-only", resp.Header.Get("X-Backend"))
			}
		})
	}
}

func TestH2UpstreamOverTLSWithItsOwnCA(t *testing.T) {
	ca := newTestCA(t)
	backend := httptest.NewUnstartedServer(synth.New(synth.Knobs{Name: "tls-backend"}))
	backend.EnableHTTP2 = true
	backend.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below are expected
	backend.TLS = &tls.Config{Certificates: []tls.Certificate{ca.valid(t, 7, "api.internal").tlsCert}}
	backend.StartTLS()
	t.Cleanup(backend.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.pem, 0o600))

	cases := []struct {
		name      string
		b         config.Backend
		status    int
		seenProto string
	}{
		{"h2 trusting the CA", config.Backend{Protocol: "h2", CAFile: caFile, ServerName: "api.internal"}, http.StatusOK, "HTTP/2.0"},
		{"http1 over TLS", config.Backend{Protocol: "http1", CAFile: caFile}, http.StatusOK, "HTTP/1.1"},
		{"wrong server name", config.Backend{Protocol: "h2", CAFile: caFile, ServerName: "other.internal"}, http.StatusBadGateway, ""},
		{"system roots only", config.Backend{Protocol: "h2"}, http.StatusBadGateway, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := startLBD(t, nil, func(cfg *config.Config) {
				c.b.URL, c.b.Weight = backend.URL, 1
				cfg.Backends = []config.Backend{c.b}
				cfg.Retries.Max = 0
			})
			resp, _ := l.get(t, "/")
			require.Equal(t, c.status, resp.StatusCode)
			require.Equal(t, c.seenProto, resp.Header.Get("X-Seen-Proto"))
		})
	}
}

// A reload that adds an https backend with its own CA: the backend is
// probed under that trust (its first probe passes, so it comes up) and
// served under it, with no restart.
func TestReloadAddsAnHTTPSBackendWithItsOwnCA(t *testing.T) {
	ca := newTestCA(t)
	backend := httptest.NewUnstartedServer(synth.New(synth.Knobs{Name: "tls-backend"}))
	backend.EnableHTTP2 = true
	backend.TLS = &tls.Config{Certificates: []tls.Certificate{ca.valid(t, 8, "api.internal").tlsCert}}
	backend.StartTLS()
	t.Cleanup(backend.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.pem, 0o600))

	l := startLBD(t, nil, fastHealth)
	next := l.d.owner.fileConfig().Clone()
	next.Backends = []config.Backend{{URL: backend.URL, Weight: 1, Protocol: "h2", CAFile: caFile, ServerName: "api.internal"}}
	require.NoError(t, l.reload(t, next))
	eventually(t, 5*time.Second, "its first probe, under its own CA, brings it up", func() bool {
		h := l.sched().Lookup(backend.URL)
		return h != nil && h.Snapshot().Eligible
	})
	resp, _ := l.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "HTTP/2.0", resp.Header.Get("X-Seen-Proto"))
}

func TestCheckNamesMissingFleetFiles(t *testing.T) {
	cfg := config.Default()
	f := config.DefaultFleet()
	f.Etcd.PasswordFile, f.Etcd.Username = filepath.Join(t.TempDir(), "nope"), "lbd"
	cfg.Fleet = &f
	probs := CheckFiles(cfg, time.Now())
	require.Len(t, probs, 1)
	require.Equal(t, "fleet.etcd.password_file", probs[0].Path)
	require.Contains(t, probs[0].Message, "no such file")
}
