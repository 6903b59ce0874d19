package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lbd/lbd/backendactor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":                true,
		"application/grpc+proto":          true,
		"application/grpc+json":           true,
		"application/grpc; charset=utf-8": true,
		"application/grpc-web":            false,
		"application/grpc-web+proto":      false,
		"application/grpcx":               false,
		"application/json":                false,
		"":                                false,
	} {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		require.Equal(t, want, isGRPC(h), ct)
	}
}

func TestGRPCOutcome(t *testing.T) {
	cases := []struct {
		status  string
		present bool
		want    backendactor.Outcome
	}{
		{"0", true, backendactor.Success},
		{"1", true, backendactor.Canceled},
		{"2", true, backendactor.ServerError},  // UNKNOWN
		{"3", true, backendactor.Success},      // INVALID_ARGUMENT
		{"4", true, backendactor.Success},      // DEADLINE_EXCEEDED: the caller's deadline
		{"5", true, backendactor.Success},      // NOT_FOUND
		{"8", true, backendactor.Success},      // RESOURCE_EXHAUSTED
		{"12", true, backendactor.Success},     // UNIMPLEMENTED
		{"13", true, backendactor.ServerError}, // INTERNAL
		{"14", true, backendactor.ServerError}, // UNAVAILABLE
		{"15", true, backendactor.ServerError}, // DATA_LOSS
		{"16", true, backendactor.Success},     // UNAUTHENTICATED
		{" 14 ", true, backendactor.ServerError},
		{"fourteen", true, backendactor.ServerError},
		{"", false, backendactor.ServerError}, // the stream ended without a status
	}
	for _, c := range cases {
		require.Equal(t, c.want, grpcOutcome(c.status, c.present), "grpc-status %q", c.status)
	}
}

// TestReleaseBodyOutcome covers how a response's end changes its outcome.
func TestReleaseBodyOutcome(t *testing.T) {
	grpcHeader := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/grpc"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name    string
		status  int
		header  http.Header
		trailer http.Header
		o       backendactor.Outcome // from the headers
		ctx     context.Context
		eof     bool
		broken  bool
		want    backendactor.Outcome
	}{
		{"plain, complete", 200, http.Header{}, nil, backendactor.Success, live, true, false, backendactor.Success},
		{"plain, broken off by the backend", 200, http.Header{}, nil, backendactor.Success, live, false, true, backendactor.GatewayError},
		{"plain, client gone", 200, http.Header{}, nil, backendactor.Success, gone, false, true, backendactor.Success},
		{"plain 5xx stays 5xx", 503, http.Header{}, nil, backendactor.ServerError, live, true, false, backendactor.ServerError},
		{"gRPC OK in trailers", 200, grpcHeader(), http.Header{"Grpc-Status": {"0"}}, backendactor.Success, live, true, false, backendactor.Success},
		{"gRPC UNAVAILABLE in trailers", 200, grpcHeader(), http.Header{"Grpc-Status": {"14"}}, backendactor.Success, live, true, false, backendactor.ServerError},
		{"gRPC NOT_FOUND in trailers", 200, grpcHeader(), http.Header{"Grpc-Status": {"5"}}, backendactor.Success, live, true, false, backendactor.Success},
		{"gRPC Trailers-Only INTERNAL", 200, grpcHeader("Grpc-Status", "13"), nil, backendactor.Success, live, true, false, backendactor.ServerError},
		{"gRPC ended without a status", 200, grpcHeader(), nil, backendactor.Success, live, true, false, backendactor.ServerError},
		{"gRPC cut short, client gone", 200, grpcHeader(), nil, backendactor.Success, gone, false, false, backendactor.Canceled},
		{"gRPC cut short by the backend", 200, grpcHeader(), nil, backendactor.Success, live, false, true, backendactor.GatewayError},
		{"upgrade counts by its 101", 101, http.Header{}, nil, backendactor.Success, live, false, true, backendactor.Success},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, "http://backend/", nil)
			require.NoError(t, err)
			resp := &http.Response{StatusCode: c.status, Header: c.header, Trailer: c.trailer, Request: req,
				Body: io.NopCloser(strings.NewReader(""))}
			b := &releaseBody{ReadCloser: resp.Body, resp: resp, o: c.o}
			b.eof.Store(c.eof)
			b.broken.Store(c.broken)
			require.Equal(t, c.want, b.outcome())
		})
	}
}

// TestReleaseBodyReadsTheEnd checks that Read notices the end and breaks.
func TestReleaseBodyReadsTheEnd(t *testing.T) {
	b := &releaseBody{ReadCloser: io.NopCloser(strings.NewReader("abc"))}
	_, err := io.ReadAll(b)
	require.NoError(t, err)
	require.True(t, b.eof.Load())
	require.False(t, b.broken.Load())

	b = &releaseBody{ReadCloser: io.NopCloser(io.MultiReader(strings.NewReader("ab"), errReader{io.ErrUnexpectedEOF}))}
	_, err = io.ReadAll(b)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.False(t, b.eof.Load())
	require.True(t, b.broken.Load())
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
