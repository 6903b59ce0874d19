package daemon

// TLS on both sides of lbd. The data plane's serving certificate lives in a
// certStore: handshakes read it through tls.Config.GetCertificate, and a
// reload swaps it atomically, so a handshake in progress sees the old pair or
// the new one, never half of each. A pair that fails the checks of
// loadKeyPair is refused and the running one stays. The crypto lives here,
// not in package config, which stays plain data; `lbd -check` calls the same
// checks (CheckFiles).

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/lbd/lbd/config"
	"github.com/lbd/lbd/routing"
)

// certStore holds the data plane's current certificate.
type certStore struct {
	now func() time.Time
	cur atomic.Pointer[tls.Certificate]
}

// newCertStore loads the first pair; an invalid one is an error.
func newCertStore(c config.TLS, now func() time.Time) (*certStore, error) {
	s := &certStore{now: now}
	return s, s.load(c)
}

// load checks the pair named by c and, only if it passes, makes it current.
func (s *certStore) load(c config.TLS) error {
	cert, err := loadKeyPair(c.CertFile, c.KeyFile, s.now())
	if err != nil {
		return err
	}
	s.cur.Store(cert)
	return nil
}

// current returns the certificate being served.
func (s *certStore) current() *tls.Certificate { return s.cur.Load() }

// serverConfig is the data plane's TLS configuration: TLS 1.2 and up, and
// ALPN offering h2 first, then http/1.1.
func (s *certStore) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load(), nil
		},
	}
}

// loadKeyPair reads a PEM certificate chain and its key and checks that
// they belong together and that the certificate is valid at now. Serving an
// expired or not-yet-valid certificate would fail every handshake, so such a
// pair is refused rather than installed.
func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("certificate %s (for %s) expired at %s", certFile, certName(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("certificate %s (for %s) is not valid before %s", certFile, certName(leaf), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

func certName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return "(no name)"
}

// loadCAFile reads a PEM bundle of trusted roots for an https backend.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// upstreamTLS is the client TLS configuration of an https backend with
// trust settings of its own (its ca_file read now, its server_name), or nil
// for the defaults; a missing or unreadable CA file is an error.
func upstreamTLS(b routing.Backend) (*tls.Config, error) {
	if b.CAFile == "" && b.ServerName == "" {
		return nil, nil
	}
	c := &tls.Config{ServerName: b.ServerName, MinVersion: tls.VersionTLS12}
	if b.CAFile != "" {
		pool, err := loadCAFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// CheckFiles is `lbd -check`'s look at the files a valid config names: the
// serving certificate and key, the fleet's etcd credentials, and every
// pool's backends' CA files.
func CheckFiles(cfg *config.Config, now time.Time) []config.Problem {
	var probs []config.Problem
	if cfg.TLS.CertFile != "" {
		if _, err := loadKeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile, now); err != nil {
			probs = append(probs, config.Problem{Path: "tls.cert_file", Message: err.Error()})
		}
	}
	if f := cfg.Fleet; f != nil {
		for _, file := range []struct{ path, name string }{
			{f.Etcd.PasswordFile, "fleet.etcd.password_file"}, {f.Etcd.CAFile, "fleet.etcd.ca_file"},
			{f.Etcd.CertFile, "fleet.etcd.cert_file"}, {f.Etcd.KeyFile, "fleet.etcd.key_file"},
		} {
			if file.path == "" {
				continue
			}
			if _, err := os.ReadFile(file.path); err != nil {
				probs = append(probs, config.Problem{Path: file.name, Message: err.Error()})
			}
		}
	}
	for _, name := range cfg.PoolNames() {
		p, _ := cfg.PoolConfig(name)
		prefix := ""
		if name != config.DefaultPool {
			prefix = "pools." + name + "."
		}
		for i, b := range p.Backends {
			if b.CAFile == "" {
				continue
			}
			if _, err := loadCAFile(b.CAFile); err != nil {
				probs = append(probs, config.Problem{Path: fmt.Sprintf("%sbackends[%d].ca_file", prefix, i), Message: err.Error()})
			}
		}
	}
	return probs
}
