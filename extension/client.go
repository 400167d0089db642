package extension

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go"
	gen "github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/transport"
)

// queryBufferSize is the read and write buffer of the query client's
// socket. A windows_events row of Sysmon or Security is about 1.5 KB, so
// one read fills the buffer with dozens of rows.
const queryBufferSize = 64 * 1024

// queryClient runs SQL on osqueryd's extension manager. It replaces
// osquery-go's ExtensionManagerClient for the tables' queries because that
// client reads responses straight from the socket, one read system call
// per Thrift field: 100,000 windows_events rows took seconds to read.
// queryClient buffers the socket and reads strings with resultProtocol, and
// otherwise behaves the same: one call at a time, osquery-go's lock and its
// error texts.
type queryClient struct {
	transport *thrift.TBufferedTransport
	client    *gen.ExtensionManagerClient
	lock      interface {
		Lock(ctx context.Context) error
		Unlock()
	}
}

// dialQueryClient connects to osqueryd's socket. timeout bounds the wait for
// the socket and every read and write on it. A call whose context has no
// deadline waits at most waitTime for another call to finish.
func dialQueryClient(socket string, timeout, waitTime time.Duration) (*queryClient, error) {
	if waitTime > timeout {
		return nil, fmt.Errorf("wait time %s exceeds the timeout %s", waitTime, timeout)
	}
	conn, err := transport.Open(socket, timeout)
	if err != nil {
		return nil, err
	}
	buffered := thrift.NewTBufferedTransport(conn, queryBufferSize)
	return &queryClient{
		transport: buffered,
		client:    gen.NewExtensionManagerClientProtocol(buffered, newResultProtocol(buffered), thrift.NewTBinaryProtocolConf(buffered, nil)),
		lock:      osquery.NewLocker(waitTime, timeout),
	}, nil
}

// QueryRowsContext runs sql and returns its rows. A transport failure is
// returned wrapped, so that errors.As finds the thrift.TException, and a
// non-zero osquery status becomes an error with osqueryd's message.
func (c *queryClient) QueryRowsContext(ctx context.Context, sql string) ([]map[string]string, error) {
	if err := c.lock.Lock(ctx); err != nil {
		return nil, fmt.Errorf("waiting for the osquery client: %w", err)
	}
	defer c.lock.Unlock()

	response, err := c.client.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("transport error in query: %w", err)
	}
	if response.Status == nil {
		return nil, errors.New("query returned nil status")
	}
	if response.Status.Code != 0 {
		return nil, fmt.Errorf("query returned error: %s", response.Status.Message)
	}
	return response.Response, nil
}

// Close closes the connection. A call in progress fails with a transport
// error.
func (c *queryClient) Close() {
	if c.transport.IsOpen() {
		c.transport.Close()
	}
}
