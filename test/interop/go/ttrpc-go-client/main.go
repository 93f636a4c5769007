// ttrpc-go-client checks a ttrpc server implementing ttrpc.interop.v1.Test
// against the reference Go ttrpc client (github.com/containerd/ttrpc v1.1.1,
// the version containerd 1.6.20 vendors).
//
// Usage: ttrpc-go-client --socket PATH [--timeout 30s]
//
// Prints one line per check ("PASS name" or "FAIL name: reason") and a final
// "N passed, M failed"; exits 1 if any check failed, 2 on usage or dial errors.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const service = "ttrpc.interop.v1.Test"

// notifyConn reports every Write on the connection, so a check can tell when
// a request has really been handed to the kernel (the Go client sends from a
// background goroutine).
type notifyConn struct {
	net.Conn
	writes chan struct{}
}

func (c *notifyConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	select {
	case c.writes <- struct{}{}:
	default:
	}
	return n, err
}

type tester struct {
	client      *ttrpc.Client
	conn        *notifyConn
	callTimeout time.Duration
	passed      int
	failed      int
}

func (t *tester) run(name string, check func() error) {
	err := check()
	if err != nil {
		t.failed++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	t.passed++
	fmt.Printf("PASS %s\n", name)
}

func (t *tester) call(method string, req, resp interface{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), t.callTimeout)
	defer cancel()
	return t.client.Call(ctx, service, method, req, resp)
}

// short keeps failure messages readable when values are long.
func short(s string) string {
	if len(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...(%d bytes)", s[:40], len(s))
}

func (t *tester) echo(value string) error {
	var resp types.StringValue
	if err := t.call("Echo", &types.StringValue{Value: value}, &resp); err != nil {
		return fmt.Errorf("Echo(%s): %v", short(value), err)
	}
	if resp.Value != value {
		return fmt.Errorf("Echo(%s) returned %s", short(value), short(resp.Value))
	}
	return nil
}

// expectStatus checks that err is a status error with the given code and,
// when message is not empty, exactly that message.
func expectStatus(err error, code codes.Code, message string) error {
	if err == nil {
		return fmt.Errorf("call succeeded, want status %v", code)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("not a status error: %v", err)
	}
	if st.Code() != code {
		return fmt.Errorf("code %v (%d) message %q, want code %v", st.Code(), st.Code(), st.Message(), code)
	}
	if message != "" && st.Message() != message {
		return fmt.Errorf("message %q, want %q", st.Message(), message)
	}
	return nil
}

func (t *tester) checkConcurrentEcho() error {
	const calls = 200
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Distinct lengths too, so a response matched to the wrong stream shows.
			value := fmt.Sprintf("echo-%d-%s", i, strings.Repeat("v", i))
			if err := t.echo(value); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	n := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		n++
	}
	if n > 0 {
		return fmt.Errorf("%d of %d calls failed, first: %v", n, calls, first)
	}
	return nil
}

// checkOutOfOrder retries a few times: a server that serializes requests fails
// every attempt, while a merely overloaded machine will not stall Echo thrice.
func (t *tester) checkOutOfOrder() error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = t.outOfOrderOnce(); err == nil {
			return nil
		}
		fmt.Printf("  out-of-order attempt %d: %v\n", attempt, err)
	}
	return err
}

func (t *tester) outOfOrderOnce() error {
	const sleepMs = 800
	const sleepFor = sleepMs * time.Millisecond
	// Drain stale notifications, then start Sleep and wait until its frame is written.
	for len(t.conn.writes) > 0 {
		<-t.conn.writes
	}
	sleepDone := make(chan error, 1)
	go func() {
		var resp types.Empty
		sleepDone <- t.call("Sleep", &types.Int64Value{Value: sleepMs}, &resp)
	}()
	select {
	case <-t.conn.writes:
	case err := <-sleepDone:
		return fmt.Errorf("Sleep(%d) returned before its request was seen: %v", sleepMs, err)
	case <-time.After(t.callTimeout):
		return errors.New("Sleep request was never written")
	}
	// The server got Sleep no earlier than now, so it cannot finish it before
	// now+800ms; a server that answers in order cannot answer Echo before that either.
	sent := time.Now()
	if err := t.echo("overtake"); err != nil {
		return err
	}
	echoTook := time.Since(sent)
	sleepErr := <-sleepDone
	sleepTook := time.Since(sent)
	if sleepErr != nil {
		return fmt.Errorf("Sleep(%d): %v", sleepMs, sleepErr)
	}
	if echoTook >= sleepFor {
		return fmt.Errorf("Echo took %v behind a pending Sleep(%d): requests are not processed concurrently", echoTook, sleepMs)
	}
	if sleepTook < sleepFor-50*time.Millisecond {
		return fmt.Errorf("Sleep(%d) returned after only %v", sleepMs, sleepTook)
	}
	return nil
}

func (t *tester) checkFail(code int64, want codes.Code) error {
	var resp types.Empty
	err := t.call("Fail", &types.Int64Value{Value: code}, &resp)
	return expectStatus(err, want, "requested failure")
}

func (t *tester) checkUnknown(svc, method, wantMessage string) error {
	ctx, cancel := context.WithTimeout(context.Background(), t.callTimeout)
	defer cancel()
	var resp types.Empty
	err := t.client.Call(ctx, svc, method, &types.Empty{}, &resp)
	return expectStatus(err, codes.Unimplemented, wantMessage)
}

func (t *tester) checkMetadata() error {
	md := ttrpc.MD{}
	md.Set("containerd-namespace-ttrpc", "interop-ns")
	md.Set("X-Interop-Upper", "lower-cased key")
	md.Append("x-interop-multi", "two", "one=with=equals")
	md.Set("x-interop-empty", "")
	var want []string
	for k, values := range md {
		for _, v := range values {
			want = append(want, k+"="+v)
		}
	}
	sort.Strings(want)

	ctx, cancel := context.WithTimeout(context.Background(), t.callTimeout)
	defer cancel()
	ctx = ttrpc.WithMetadata(ctx, md)
	var resp types.StringValue
	if err := t.client.Call(ctx, service, "Metadata", &types.Empty{}, &resp); err != nil {
		return fmt.Errorf("Metadata: %v", err)
	}
	if got := resp.Value; got != strings.Join(want, "\n") {
		return fmt.Errorf("got %q, want %q", got, strings.Join(want, "\n"))
	}
	// Without metadata the server must see none.
	if err := t.call("Metadata", &types.Empty{}, &resp); err != nil {
		return fmt.Errorf("Metadata without metadata: %v", err)
	}
	if resp.Value != "" {
		return fmt.Errorf("call without metadata: got %q, want empty", resp.Value)
	}
	return nil
}

func (t *tester) checkDeadline() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var resp types.Int64Value
	if err := t.client.Call(ctx, service, "Deadline", &types.Empty{}, &resp); err != nil {
		return fmt.Errorf("Deadline: %v", err)
	}
	if resp.Value <= 1e9 || resp.Value > 2e9 {
		return fmt.Errorf("timeout_nano %d not in (1e9, 2e9]", resp.Value)
	}
	// No deadline: timeout_nano must be 0.
	if err := t.client.Call(context.Background(), service, "Deadline", &types.Empty{}, &resp); err != nil {
		return fmt.Errorf("Deadline without deadline: %v", err)
	}
	if resp.Value != 0 {
		return fmt.Errorf("without deadline timeout_nano = %d, want 0", resp.Value)
	}
	return nil
}

func (t *tester) checkBigTooLarge() error {
	var resp types.BytesValue
	err := t.call("Big", &types.Int64Value{Value: 5 << 20}, &resp)
	if err := expectStatus(err, codes.ResourceExhausted, ""); err != nil {
		return fmt.Errorf("Big(5 MiB): %v", err)
	}
	if err := t.echo("still alive after Big(5 MiB)"); err != nil {
		return fmt.Errorf("connection broken after Big(5 MiB): %v", err)
	}
	return nil
}

func (t *tester) checkBig() error {
	const n = 1 << 20
	var resp types.BytesValue
	if err := t.call("Big", &types.Int64Value{Value: n}, &resp); err != nil {
		return fmt.Errorf("Big(1 MiB): %v", err)
	}
	if len(resp.Value) != n {
		return fmt.Errorf("got %d bytes, want %d", len(resp.Value), n)
	}
	if !bytes.Equal(resp.Value, bytes.Repeat([]byte{'x'}, n)) {
		return errors.New("payload is not all 'x'")
	}
	return nil
}

func main() {
	socket := flag.String("socket", "", "unix socket of the server")
	timeout := flag.Duration("timeout", 30*time.Second, "timeout of each call")
	flag.Parse()
	if *socket == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-go-client --socket PATH [--timeout 30s]")
		os.Exit(2)
	}
	raw, err := net.DialTimeout("unix", *socket, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dial %s: %v\n", *socket, err)
		os.Exit(2)
	}
	conn := &notifyConn{Conn: raw, writes: make(chan struct{}, 1)}
	t := &tester{client: ttrpc.NewClient(conn), conn: conn, callTimeout: *timeout}
	defer t.client.Close()

	t.run("echo", func() error { return t.echo("hello") })
	t.run("echo-empty", func() error { return t.echo("") })
	t.run("echo-200-concurrent", t.checkConcurrentEcho)
	t.run("out-of-order", t.checkOutOfOrder)
	t.run("fail-notfound", func() error { return t.checkFail(5, codes.NotFound) })
	t.run("fail-unimplemented", func() error { return t.checkFail(12, codes.Unimplemented) })
	t.run("unknown-method", func() error { return t.checkUnknown(service, "Nope", "method Nope") })
	t.run("unknown-service", func() error { return t.checkUnknown("nope.Svc", "Echo", "service nope.Svc") })
	t.run("metadata", t.checkMetadata)
	t.run("deadline", t.checkDeadline)
	t.run("big-too-large", t.checkBigTooLarge)
	t.run("big-1mib", t.checkBig)
	t.run("echo-after-all", func() error { return t.echo("bye") })

	fmt.Printf("%d passed, %d failed\n", t.passed, t.failed)
	if t.failed > 0 {
		os.Exit(1)
	}
}
