package proxy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUpgradeType(t *testing.T) {
	cases := []struct {
		conn, upgrade, want string
	}{
		{"Upgrade", "websocket", "websocket"},
		{"keep-alive, Upgrade", "websocket", "websocket"},
		{"UPGRADE", "WebSocket", "WebSocket"},
		{"keep-alive", "websocket", ""}, // Upgrade without Connection: Upgrade is no request to switch
		{"Upgrade", "", ""},
		{"", "", ""},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.conn != "" {
			h.Set("Connection", c.conn)
		}
		if c.upgrade != "" {
			h.Set("Upgrade", c.upgrade)
		}
		require.Equal(t, c.want, upgradeType(h), "%+v", c)
	}
}

func TestDropH2CUpgrade(t *testing.T) {
	cases := []struct {
		name        string
		upgrade     []string
		wantUpgrade []string
		settings    bool // HTTP2-Settings kept
	}{
		{"h2c alone", []string{"h2c"}, nil, false},
		{"h2c among others", []string{"H2C, websocket"}, []string{"websocket"}, false},
		{"two header lines", []string{"foo", "h2c"}, []string{"foo"}, false},
		{"websocket untouched", []string{"websocket"}, []string{"websocket"}, true},
		{"no upgrade", nil, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Http2-Settings": {"AAMAAABkAAQAAP__"}}
			if c.upgrade != nil {
				h["Upgrade"] = c.upgrade
			}
			dropH2CUpgrade(h)
			require.Equal(t, c.wantUpgrade, h["Upgrade"])
			require.Equal(t, c.settings, h.Get("Http2-Settings") != "")
		})
	}
}
