package config

import (
	"fmt"
	"net/url"
	"strings"
)

// fleet checks the fleet section: endpoints etcd can dial, a prefix that
// keeps lbd's keys apart, and credentials given in pairs.
func (k *checker) fleet(f *Fleet) {
	e := f.Etcd
	if len(e.Endpoints) == 0 {
		k.add("fleet.etcd.endpoints", `must list at least one etcd client URL, such as "http://127.0.0.1:2379"`)
	}
	scheme := ""
	for i, ep := range e.Endpoints {
		p := fmt.Sprintf("fleet.etcd.endpoints[%d]", i)
		s, err := etcdEndpoint(ep)
		switch {
		case err != nil:
			k.add(p, "%v", err)
		case scheme == "":
			scheme = s
		case s != scheme:
			k.add(p, "%q uses %s while the first endpoint uses %s; one cluster is reached one way", ep, s, scheme)
		}
	}
	switch {
	case e.Prefix == "":
		k.add("fleet.etcd.prefix", `must not be empty: lbd's keys need a prefix of their own, such as "/lbd/"`)
	case !strings.HasSuffix(e.Prefix, "/"):
		k.add("fleet.etcd.prefix", "must end with \"/\" so that its keys stay apart from a longer prefix, as in %q", e.Prefix+"/")
	}
	k.positive("fleet.etcd.dial_timeout", e.DialTimeout)
	if e.Username != "" && e.PasswordFile == "" {
		k.add("fleet.etcd.password_file", "must be set when fleet.etcd.username is set (the file holds the password)")
	}
	if e.Username == "" && e.PasswordFile != "" {
		k.add("fleet.etcd.username", "must be set when fleet.etcd.password_file is set")
	}
	if e.CertFile == "" && e.KeyFile != "" {
		k.add("fleet.etcd.cert_file", "must be set when fleet.etcd.key_file is set (set both for a client certificate, or neither)")
	}
	if e.CertFile != "" && e.KeyFile == "" {
		k.add("fleet.etcd.key_file", "must be set when fleet.etcd.cert_file is set (set both for a client certificate, or neither)")
	}
	if scheme == "http" {
		for _, tf := range []struct{ name, v string }{{"ca_file", e.CAFile}, {"cert_file", e.CertFile}, {"key_file", e.KeyFile}} {
			if tf.v != "" {
				k.add("fleet.etcd."+tf.name, "is only used with https endpoints")
			}
		}
	}
	switch {
	case strings.ContainsAny(f.Name, "/"):
		k.add("fleet.name", "must not contain \"/\": it is one key segment under <prefix>replicas/, got %q", f.Name)
	case strings.ContainsFunc(f.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		k.add("fleet.name", "must not contain spaces or control characters, got %q", f.Name)
	case len(f.Name) > 128:
		k.add("fleet.name", "must be at most 128 bytes, got %d", len(f.Name))
	}
}

// etcdEndpoint checks one client URL and returns its scheme.
func etcdEndpoint(ep string) (string, error) {
	u, err := url.Parse(ep)
	switch {
	case err != nil || !strings.Contains(ep, "://"):
		return "", fmt.Errorf("%q is not a URL such as \"http://127.0.0.1:2379\"", ep)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q has scheme %q; etcd client URLs are http or https", ep, u.Scheme)
	case u.Port() == "" || u.Hostname() == "":
		return "", fmt.Errorf("%q needs a host and a port, as in \"http://127.0.0.1:2379\"", ep)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		return "", fmt.Errorf("%q must be only scheme, host and port", ep)
	}
	return u.Scheme, nil
}
