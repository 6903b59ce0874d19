package fleet

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lbd/lbd/config"
)

// clientConfig turns the fleet.etcd section into the etcd client's config,
// reading the password and certificate files once.
//
// Keepalive pings every 5s (answered within dial_timeout) notice a dead
// connection that sends no RST, such as a partition, so the session ends
// and Commit refuses instead of waiting on a connection that is gone.
func clientConfig(e config.Etcd) (clientv3.Config, error) {
	cfg := clientv3.Config{
		Endpoints:            e.Endpoints,
		DialTimeout:          e.DialTimeout.D(),
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: e.DialTimeout.D(),
		PermitWithoutStream:  true,
		// The link logs what matters through slog; the client's own zap
		// lines would repeat each retry.
		Logger: zap.NewNop(),
	}
	if e.Username != "" {
		pw, err := os.ReadFile(e.PasswordFile)
		if err != nil {
			return cfg, fmt.Errorf("fleet.etcd.password_file: %w", err)
		}
		cfg.Username, cfg.Password = e.Username, strings.TrimSpace(string(pw))
		if cfg.Password == "" {
			return cfg, fmt.Errorf("fleet.etcd.password_file %s is empty", e.PasswordFile)
		}
	}
	https := len(e.Endpoints) > 0 && strings.HasPrefix(e.Endpoints[0], "https://")
	if https || e.CAFile != "" || e.CertFile != "" {
		info := transport.TLSInfo{CertFile: e.CertFile, KeyFile: e.KeyFile, TrustedCAFile: e.CAFile}
		var tc *tls.Config
		var err error
		if info.Empty() && e.CAFile == "" {
			tc = &tls.Config{MinVersion: tls.VersionTLS12} // system roots
		} else if tc, err = info.ClientConfig(); err != nil {
			return cfg, fmt.Errorf("fleet.etcd TLS files: %w", err)
		}
		cfg.TLS = tc
	}
	return cfg, nil
}
