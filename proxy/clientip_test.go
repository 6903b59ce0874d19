package proxy

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClientIP(t *testing.T) {
	trusted := []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"}
	cases := []struct {
		name    string
		trusted []string
		peer    string
		xff     []string
		want    string
	}{
		{"no trusted proxies: the peer, header ignored", nil, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"untrusted peer: header ignored", trusted, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer: the hop before it", trusted, "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted peer without header: the peer", trusted, "10.1.2.3:4000", nil, "10.1.2.3"},
		{"rightmost untrusted wins over forged entries", trusted, "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines read as one list", trusted, "192.0.2.1:80", []string{"6.6.6.6", "198.51.100.1, 10.0.0.1"}, "198.51.100.1"},
		{"all hops trusted: the leftmost", trusted, "10.1.2.3:4000", []string{"10.0.0.7, 192.0.2.1"}, "10.0.0.7"},
		{"garbage stops the walk at the last good hop", trusted, "10.1.2.3:4000", []string{"198.51.100.1, bogus, 10.0.0.2"}, "10.0.0.2"},
		{"entries with ports", trusted, "10.1.2.3:4000", []string{"[2001:db9::5]:443, 10.0.0.2:8080"}, "2001:db9::5"},
		{"trusted IPv6 prefix", trusted, "[2001:db8::7]:4000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"IPv4-mapped peer is trusted as IPv4", trusted, "[::ffff:10.0.0.1]:4000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"spaces are tolerated", trusted, "10.1.2.3:4000", []string{"  198.51.100.1 ,10.0.0.2 "}, "198.51.100.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := NewClientIP(c.trusted)
			require.NoError(t, err)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			require.Equal(t, c.want, f(r))
			ips, err := NewClientIPs(c.trusted)
			require.NoError(t, err)
			require.Equal(t, c.want, ips.ClientIP(r), "the swappable holder agrees")
		})
	}
}

func TestClientIPRejectsBadTrustedProxies(t *testing.T) {
	for _, s := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0.0/x", ""} {
		_, err := NewClientIP([]string{s})
		require.Error(t, err, s)
	}
}

func TestClientIPsSetSwapsTheTrustedProxies(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.2.3:4000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	ips, err := NewClientIPs(nil)
	require.NoError(t, err)
	steps := []struct {
		trusted []string
		err     string
		want    string
	}{
		{nil, "", "10.1.2.3"},
		{[]string{"10.0.0.0/8"}, "", "198.51.100.1"},
		{[]string{"10.0.0.0/8", "bogus"}, "bogus", "198.51.100.1"}, // refused: the last good set stays
		{[]string{"192.0.2.0/24"}, "", "10.1.2.3"},
		{nil, "", "10.1.2.3"},
	}
	for _, s := range steps {
		err := ips.Set(s.trusted)
		if s.err != "" {
			require.ErrorContains(t, err, s.err)
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, s.want, ips.ClientIP(r), "%v", s.trusted)
	}
}

func TestClientIPsSetWhileRequestsAreNamed(t *testing.T) {
	ips, err := NewClientIPs([]string{"10.0.0.0/8"})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "10.1.2.3:4000"
			r.Header.Set("X-Forwarded-For", "198.51.100.1")
			for range 2000 {
				got := ips.ClientIP(r)
				if got != "198.51.100.1" && got != "10.1.2.3" {
					t.Errorf("client %q is neither what one set nor the other says", got)
					return
				}
			}
		})
	}
	for i := range 200 {
		trusted := []string{"10.0.0.0/8"}
		if i%2 == 1 {
			trusted = nil
		}
		require.NoError(t, ips.Set(trusted))
	}
	wg.Wait()
}
