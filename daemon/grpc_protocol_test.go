package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/lbd/lbd/backendactor"
	"github.com/lbd/lbd/config"
)

// startGRPCLBD runs lbd with h2c on its listener over h2c gRPC backends,
// and returns a client with one connection to it.
func startGRPCLBD(t *testing.T, backends []*grpcBackend, mutate func(*config.Config)) (*testLBD, testpb.TestServiceClient) {
	t.Helper()
	l := startLBD(t, nil, func(c *config.Config) {
		c.H2C, c.Policy = true, "rr"
		c.Health.Disabled = true // a gRPC server answers GET /healthz with an error
		for _, b := range backends {
			c.Backends = append(c.Backends, config.Backend{URL: b.url(), Weight: 1, Protocol: "h2c"})
		}
		if mutate != nil {
			mutate(c)
		}
	})
	return l, grpcClient(t, l.d.DataAddr())
}

func grpcClient(t testing.TB, addr string) testpb.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCAllFourCallKindsThroughLBD(t *testing.T) {
	_, c := startGRPCLBD(t, startGRPCBackends(t, "g1"), nil)

	t.Run("unary", func(t *testing.T) {
		var hdr, trl metadata.MD
		resp, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{ResponseSize: 100_000}, grpc.Header(&hdr), grpc.Trailer(&trl))
		require.NoError(t, err)
		require.Equal(t, "g1", resp.GetServerId())
		require.Len(t, resp.GetPayload().GetBody(), 100_000)
		require.Equal(t, []string{"g1"}, hdr.Get("x-backend"))
		require.NotEmpty(t, hdr.Get("x-request-id"), "lbd's own response header rides along")
		require.Equal(t, []string{"unary"}, trl.Get("x-trailer"))
	})

	t.Run("server streaming", func(t *testing.T) {
		sizes := []int32{10, 70_000, 0, 5}
		req := &testpb.StreamingOutputCallRequest{}
		for _, s := range sizes {
			req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: s})
		}
		s, err := c.StreamingOutputCall(callCtx(t), req)
		require.NoError(t, err)
		var got []int32
		for {
			m, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			got = append(got, int32(len(m.GetPayload().GetBody())))
		}
		require.Equal(t, sizes, got)
		hdr, err := s.Header()
		require.NoError(t, err)
		require.Equal(t, []string{"g1"}, hdr.Get("x-backend"))
		require.Equal(t, []string{"server-streaming"}, s.Trailer().Get("x-trailer"))
	})

	t.Run("client streaming", func(t *testing.T) {
		s, err := c.StreamingInputCall(callCtx(t))
		require.NoError(t, err)
		for _, n := range []int{1, 40_000, 300, 0} {
			require.NoError(t, s.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}))
		}
		resp, err := s.CloseAndRecv()
		require.NoError(t, err)
		require.Equal(t, int32(40_301), resp.GetAggregatedPayloadSize())
		require.Equal(t, []string{"client-streaming"}, s.Trailer().Get("x-trailer"))
	})

	t.Run("bidirectional, message by message", func(t *testing.T) {
		// Ping-pong: each answer must arrive before the next message is sent,
		// so a proxy that buffered either direction would stall here.
		s, err := c.FullDuplexCall(callCtx(t))
		require.NoError(t, err)
		for i := range 20 {
			body := []byte("ping " + strconv.Itoa(i))
			require.NoError(t, s.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}))
			m, err := s.Recv()
			require.NoError(t, err)
			require.Equal(t, body, m.GetPayload().GetBody())
		}
		require.NoError(t, s.CloseSend())
		_, err = s.Recv()
		require.ErrorIs(t, err, io.EOF)
		require.Equal(t, []string{"bidi"}, s.Trailer().Get("x-trailer"))
	})
}

func TestGRPCStatusesPassThroughAndServerTroubleCounts(t *testing.T) {
	backends := startGRPCBackends(t, "g1")
	l, c := startGRPCLBD(t, backends, func(c *config.Config) {
		// Count failures without the breaker opening on them (it would: that
		// is the point, but then later calls would get lbd's 503).
		c.Breaker.FailureThreshold = 1000
		c.Outlier.Disabled = true
	})
	h := l.sched().Lookup(backends[0].url())
	require.NotNil(t, h)
	failures := func() uint64 {
		s, err := h.Stats(callCtx(t))
		require.NoError(t, err)
		return s.Failures
	}

	cases := []struct {
		code    codes.Code
		failure bool
	}{
		{codes.NotFound, false},
		{codes.InvalidArgument, false},
		{codes.PermissionDenied, false},
		{codes.ResourceExhausted, false},
		{codes.Unimplemented, false},
		{codes.DeadlineExceeded, false},
		{codes.Unavailable, true},
		{codes.Internal, true},
		{codes.DataLoss, true},
		{codes.Unknown, true},
	}
	for _, c2 := range cases {
		t.Run(c2.code.String(), func(t *testing.T) {
			msg := "backend says " + c2.code.String()
			for _, where := range []string{"headers (Trailers-Only)", "trailers (after messages)"} {
				before := failures()
				var err error
				var trl metadata.MD
				if where == "headers (Trailers-Only)" {
					_, err = c.UnaryCall(callCtx(t), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(c2.code), Message: msg}})
				} else {
					var s grpc.ServerStreamingClient[testpb.StreamingOutputCallResponse]
					s, err = c.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{
						ResponseParameters: []*testpb.ResponseParameters{{Size: 3}, {Size: 4}},
						ResponseStatus:     &testpb.EchoStatus{Code: int32(c2.code), Message: msg},
					})
					require.NoError(t, err)
					for n := 0; err == nil; n++ {
						_, err = s.Recv()
						require.LessOrEqual(t, n, 2)
					}
					trl = s.Trailer()
				}
				st := status.Convert(err)
				require.Equal(t, c2.code, st.Code(), where)
				require.Equal(t, msg, st.Message(), where)
				if trl != nil {
					require.Equal(t, []string{"server-streaming"}, trl.Get("x-trailer"), "custom trailers ride with the status")
				}
				want := before
				if c2.failure {
					want++
				}
				require.Equal(t, want, failures(), "%s in %s counts against the backend: %v", c2.code, where, c2.failure)
			}
		})
	}
}

func TestGRPCDeadlinesReachTheBackend(t *testing.T) {
	backends := startGRPCBackends(t, "g1")
	_, c := startGRPCLBD(t, backends, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var hdr metadata.MD
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
	require.NoError(t, err)
	require.Len(t, hdr.Get("x-deadline-in-ms"), 1, "grpc-timeout crossed lbd")
	left, err := strconv.Atoi(hdr.Get("x-deadline-in-ms")[0])
	require.NoError(t, err)
	require.True(t, left > 0 && left <= 5000, "the backend's deadline is the client's: %d ms left", left)

	// A call that outlives its deadline fails with DEADLINE_EXCEEDED, and the
	// backend's handler is released too, not left running.
	ctx, cancel = context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-block", "1"), 200*time.Millisecond)
	defer cancel()
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{})
	require.Equal(t, codes.DeadlineExceeded, status.Code(err))
	select {
	case err := <-backends[0].ended:
		require.Error(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the backend's call never ended")
	}
}

func TestGRPCOneConnectionIsSpreadPerCall(t *testing.T) {
	backends := startGRPCBackends(t, "g1", "g2", "g3")
	_, c := startGRPCLBD(t, backends, nil)
	counts := map[string]int{}
	for range 300 {
		resp, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
		require.NoError(t, err)
		counts[resp.GetServerId()]++
	}
	require.Len(t, counts, 3)
	for name, n := range counts {
		require.InDelta(t, 100, n, 10, "%s got %d of 300 calls: %v", name, n, counts)
	}
}

func TestGRPCServerTroubleOpensTheBreaker(t *testing.T) {
	backends := startGRPCBackends(t, "g1")
	l, c := startGRPCLBD(t, backends, func(c *config.Config) {
		c.Breaker.FailureThreshold = 3
		c.Breaker.OpenFor = config.Duration(time.Hour)
		c.Breaker.MaxOpenFor = config.Duration(time.Hour)
	})
	h := l.sched().Lookup(backends[0].url())
	unavailable := &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable), Message: "overloaded"}}
	for range 3 {
		_, err := c.UnaryCall(callCtx(t), unavailable)
		require.Equal(t, "overloaded", status.Convert(err).Message(), "the backend's own answer")
	}
	require.Eventually(t, func() bool { return h.Snapshot().Breaker == backendactor.Open }, 10*time.Second, 5*time.Millisecond,
		"three UNAVAILABLE answers in a row open the breaker, as three 503s would")
	_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "lbd answers its own 503 no-backend in gRPC: UNAVAILABLE")
	require.Equal(t, "lbd: service unavailable (no-backend)", status.Convert(err).Message())
}

func TestGRPCOverTLS(t *testing.T) {
	ca := newTestCA(t)
	pair := ca.valid(t, 1, "lbd.test")
	certFile, keyFile := write(t, t.TempDir(), pair.certPEM, pair.key)
	backends := startGRPCBackends(t, "g1", "g2")
	l := startLBD(t, nil, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
		c.Policy, c.Health.Disabled = "rr", true
		for _, b := range backends {
			c.Backends = append(c.Backends, config.Backend{URL: b.url(), Weight: 1, Protocol: "h2c"})
		}
	})
	creds := credentials.NewTLS(&tls.Config{RootCAs: ca.pool, ServerName: "lbd.test"})
	cc, err := grpc.NewClient("passthrough:///"+l.d.DataAddr(), grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	c := testpb.NewTestServiceClient(cc)

	seen := map[string]bool{}
	for range 4 {
		var hdr metadata.MD
		resp, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{ResponseSize: 10}, grpc.Header(&hdr))
		require.NoError(t, err)
		seen[resp.GetServerId()] = true
	}
	require.Equal(t, map[string]bool{"g1": true, "g2": true}, seen, "TLS in front, h2c behind, still per call")
	s, err := c.FullDuplexCall(callCtx(t))
	require.NoError(t, err)
	require.NoError(t, s.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("over tls")}}))
	m, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, "over tls", string(m.GetPayload().GetBody()))
	require.NoError(t, s.CloseSend())
	_, err = s.Recv()
	require.ErrorIs(t, err, io.EOF)
}
