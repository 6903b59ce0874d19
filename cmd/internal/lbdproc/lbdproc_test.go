package lbdproc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoopback(t *testing.T) {
	require.Equal(t, "127.0.0.1:3030", Loopback("[::]:3030"))
	require.Equal(t, "127.0.0.1:3030", Loopback(":3030"))
	require.Equal(t, "127.0.0.1:3030", Loopback("0.0.0.0:3030"))
	require.Equal(t, "127.0.0.1:41000", Loopback("127.0.0.1:41000"))
	require.Equal(t, "[::1]:41000", Loopback("[::1]:41000"))
}

func TestMetricSumsAFamily(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("# HELP lbd_retries_total x\nlbd_retries_total 3\n" +
			"lbd_outlier_ejections_total{backend=\"a\"} 1\nlbd_outlier_ejections_total{backend=\"b\"} 2\n" +
			"lbd_outlier_ejections_totalish 100\n"))
	}))
	defer srv.Close()
	p := &Process{AdminURL: srv.URL, client: srv.Client()}
	ctx := context.Background()
	v, err := p.Metric(ctx, "lbd_retries_total")
	require.NoError(t, err)
	require.Equal(t, 3.0, v)
	v, err = p.Metric(ctx, "lbd_outlier_ejections_total")
	require.NoError(t, err)
	require.Equal(t, 3.0, v, "labelled samples add up; a longer name is not a sample of the family")
	_, err = p.Metric(ctx, "lbd_nothing")
	require.ErrorIs(t, err, ErrNoMetric)
}
