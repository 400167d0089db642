package extension

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go"
)

// clientQuerier runs the tables' SQL on osqueryd through a client of its
// own, and implements osq.Querier. It is safe for concurrent use, but
// osquery-go's client runs one call at a time, so calls queue for its lock.
type clientQuerier struct {
	socket   string
	timeout  time.Duration
	waitTime time.Duration
	logger   *slog.Logger

	mu     sync.Mutex
	client *osquery.ExtensionManagerClient
}

// newClientQuerier connects to osqueryd. Each call on the client may take
// at most timeout, because osquery-go uses the connect timeout as the
// socket's read and write timeout, and a call whose context has no deadline
// waits at most waitTime for another call to finish.
func newClientQuerier(socket string, timeout, waitTime time.Duration, logger *slog.Logger) (*clientQuerier, error) {
	q := &clientQuerier{socket: socket, timeout: timeout, waitTime: waitTime, logger: logger}
	client, err := q.connect()
	if err != nil {
		return nil, err
	}
	q.client = client
	return q, nil
}

func (q *clientQuerier) connect() (*osquery.ExtensionManagerClient, error) {
	client, err := osquery.NewClient(q.socket, q.timeout,
		osquery.DefaultWaitTime(q.waitTime),
		osquery.MaxWaitTime(q.timeout))
	if err != nil {
		return nil, fmt.Errorf("opening a query client on osquery socket %s: %w", q.socket, err)
	}
	return client, nil
}

// QueryRows runs sql on osqueryd. A non-zero osquery status becomes an
// error. After a transport error it reconnects and retries once, because a
// timed-out call leaves the Thrift stream out of step and every later call
// on that connection would fail. The retry is safe because the tables only
// send SELECT statements.
func (q *clientQuerier) QueryRows(ctx context.Context, sql string) ([]map[string]string, error) {
	client := q.current()
	rows, err := client.QueryRowsContext(ctx, sql)
	if err == nil {
		return rows, nil
	}
	if !isTransportError(err) || ctx.Err() != nil {
		return nil, fmt.Errorf("querying osquery: %w", err)
	}

	q.logger.WarnContext(ctx, "osquery query failed, reconnecting and retrying once",
		"socket", q.socket, "error", err)
	client, reconnectErr := q.reconnect(client)
	if reconnectErr != nil {
		return nil, fmt.Errorf("querying osquery: %w (reconnecting failed too: %w)", err, reconnectErr)
	}
	rows, err = client.QueryRowsContext(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("querying osquery after reconnecting: %w", err)
	}
	return rows, nil
}

func (q *clientQuerier) current() *osquery.ExtensionManagerClient {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.client
}

// reconnect replaces failed with a new client, unless a concurrent call has
// replaced it already, and returns the client to retry with.
//
// NOTE: on Unix, osquery-go's connect waits up to the query timeout for a
// missing socket file, so when osqueryd has gone this call blocks that
// long. The server's ping ends the extension within an interval anyway.
func (q *clientQuerier) reconnect(failed *osquery.ExtensionManagerClient) (*osquery.ExtensionManagerClient, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client != failed {
		return q.client, nil
	}

	client, err := q.connect()
	if err != nil {
		return nil, err
	}
	failed.Close()
	q.client = client
	return client, nil
}

// Close closes the current client.
func (q *clientQuerier) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.client.Close()
}

// isTransportError reports whether err came from the Thrift connection
// rather than from osqueryd's response or from waiting for the client's lock.
func isTransportError(err error) bool {
	var thriftErr thrift.TException
	return errors.As(err, &thriftErr)
}
