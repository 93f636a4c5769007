// ttrpc-go-server serves ttrpc.interop.v1.Test with the reference Go ttrpc
// server (github.com/containerd/ttrpc v1.1.1). It exists to prove that
// ttrpc-go-client's expectations match the reference implementation, so a
// failure against our C server points at the C server, not at the checks.
//
// Usage: ttrpc-go-server --socket PATH    (prints "ready", exits 0 on SIGTERM)
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const maxMessage = 4 << 20

func methods() map[string]ttrpc.Method {
	return map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.StringValue
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &req, nil
		},
		"Sleep": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.Int64Value
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			time.Sleep(time.Duration(req.Value) * time.Millisecond)
			return &types.Empty{}, nil
		},
		"Fail": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.Int64Value
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return nil, status.Error(codes.Code(req.Value), "requested failure")
		},
		"Metadata": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var lines []string
			if md, ok := ttrpc.GetMetadata(ctx); ok {
				for k, values := range md {
					for _, v := range values {
						lines = append(lines, k+"="+v)
					}
				}
			}
			sort.Strings(lines)
			return &types.StringValue{Value: strings.Join(lines, "\n")}, nil
		},
		"Deadline": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			// The Go server only exposes timeout_nano as a context deadline.
			var remaining int64
			if dl, ok := ctx.Deadline(); ok {
				remaining = time.Until(dl).Nanoseconds()
			}
			return &types.Int64Value{Value: remaining}, nil
		},
		"Big": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.Int64Value
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			if req.Value < 0 || req.Value > maxMessage {
				return nil, status.Errorf(codes.ResourceExhausted, "%d bytes exceed the message limit", req.Value)
			}
			return &types.BytesValue{Value: []byte(strings.Repeat("x", int(req.Value)))}, nil
		},
	}
}

func main() {
	socket := flag.String("socket", "", "unix socket to listen on")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-go-server --socket PATH")
		os.Exit(2)
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server.Register("ttrpc.interop.v1.Test", methods())
	l, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		server.Close()
	}()
	fmt.Println("ready")
	if err := server.Serve(context.Background(), l); err != nil && err != ttrpc.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
