package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/lbd/lbd/config"
)

// adminToken returns the admin bearer token: env LB_ADMIN_TOKEN wins over
// admin.token_file, read once at start with surrounding whitespace (the
// newline editors add) trimmed. "" means no token. A token file that is
// missing or empty is an error: the operator asked for protection.
func adminToken(cfg *config.Config, getenv func(string) string) (string, error) {
	if t := strings.TrimSpace(getenv("LB_ADMIN_TOKEN")); t != "" {
		return t, nil
	}
	if cfg.Admin.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(cfg.Admin.TokenFile)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errors.New("admin.token_file: " + cfg.Admin.TokenFile + " is empty; put the bearer token in it")
	}
	return t, nil
}

// checkAdminExposure refuses an admin listener reachable from other hosts
// unless a bearer token protects it. The token is judged as adminToken
// reads it, so a blank LB_ADMIN_TOKEN protects nothing and is refused like
// a missing one.
func checkAdminExposure(cfg *config.Config, getenv func(string) string) error {
	host, _, _ := net.SplitHostPort(cfg.Admin.Listen)
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	if t, err := adminToken(cfg, getenv); err == nil && t != "" {
		return nil
	}
	return fmt.Errorf("admin.listen: %s is not loopback-only: set LB_ADMIN_TOKEN or admin.token_file to a non-empty token, or listen on 127.0.0.1", cfg.Admin.Listen)
}
