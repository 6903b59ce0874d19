package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcBackend is a grpc-go server of the interop TestService (shipped with
// grpc, so nothing is generated here) that names itself in a header, sets a
// trailer on every call, answers with the status a request asks for, and
// blocks a call marked "x-block" until its context ends.
type grpcBackend struct {
	testpb.UnimplementedTestServiceServer
	name  string
	addr  string
	ended chan error // the context error of each blocked call, once it ends
}

func startGRPCBackends(t testing.TB, names ...string) []*grpcBackend {
	t.Helper()
	var out []*grpcBackend
	for _, n := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		b := &grpcBackend{name: n, addr: ln.Addr().String(), ended: make(chan error, 4)}
		srv := grpc.NewServer()
		testpb.RegisterTestServiceServer(srv, b)
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(srv.Stop)
		out = append(out, b)
	}
	return out
}

func (b *grpcBackend) url() string { return "http://" + b.addr }

func (b *grpcBackend) headers(ctx context.Context) metadata.MD {
	md := metadata.Pairs("x-backend", b.name)
	if dl, ok := ctx.Deadline(); ok {
		md.Append("x-deadline-in-ms", strconv.FormatInt(time.Until(dl).Milliseconds(), 10))
	}
	return md
}

func echoStatus(s *testpb.EchoStatus) error {
	if s.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(s.GetCode()), s.GetMessage())
}

func (b *grpcBackend) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("x-block")) > 0 {
		<-ctx.Done()
		b.ended <- ctx.Err()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err // nothing sent yet: grpc-go answers Trailers-Only, grpc-status in the headers
	}
	if err := grpc.SetHeader(ctx, b.headers(ctx)); err != nil {
		return nil, err
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "unary")); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{ServerId: b.name, Payload: &testpb.Payload{Body: make([]byte, req.GetResponseSize())}}, nil
}

func (b *grpcBackend) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, s grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	if err := s.SendHeader(b.headers(s.Context())); err != nil {
		return err
	}
	s.SetTrailer(metadata.Pairs("x-trailer", "server-streaming"))
	for _, p := range req.GetResponseParameters() {
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return echoStatus(req.GetResponseStatus()) // after the messages: grpc-status in the trailers
}

func (b *grpcBackend) StreamingInputCall(s grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	if err := s.SendHeader(b.headers(s.Context())); err != nil {
		return err
	}
	s.SetTrailer(metadata.Pairs("x-trailer", "client-streaming"))
	total := 0
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return s.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(m.GetPayload().GetBody())
	}
}

func (b *grpcBackend) FullDuplexCall(s grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	if err := s.SendHeader(b.headers(s.Context())); err != nil {
		return err
	}
	s.SetTrailer(metadata.Pairs("x-trailer", "bidi"))
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: m.GetPayload()}); err != nil {
			return err
		}
	}
}
