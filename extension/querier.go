package extension

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// clientQuerier runs the tables' SQL on osqueryd through a client of its
// own, and implements osq.Querier. It is safe for concurrent use, but the
// client runs one call at a time, so calls queue for its lock.
type clientQuerier struct {
	socket   string
	timeout  time.Duration
	waitTime time.Duration
	logger   *slog.Logger

	mu sync.Mutex
	// client is nil after a failed or abandoned call retired it, until the
	// next call connects again.
	client *sharedClient
}

// sharedClient counts the calls that use a client, because closing a
// Thrift socket while a call reads from it blocks until the read ends, and
// clears the read deadline of that call. A retired client is closed when
// its last call ends. The counts are guarded by clientQuerier.mu.
type sharedClient struct {
	*queryClient
	calls   int
	retired bool
}

// newClientQuerier connects to osqueryd. Each call on the client may take
// at most timeout, because osquery-go uses the connect timeout as the
// socket's read and write timeout, and a call whose context has no deadline
// waits at most waitTime for another call to finish.
func newClientQuerier(socket string, timeout, waitTime time.Duration, logger *slog.Logger) (*clientQuerier, error) {
	q := &clientQuerier{socket: socket, timeout: timeout, waitTime: waitTime, logger: logger}

	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.connectLocked(); err != nil {
		return nil, err
	}
	return q, nil
}

// QueryRows runs sql on osqueryd. A non-zero osquery status becomes an
// error. After a transport error it reconnects and retries once, because a
// timed-out call leaves the Thrift stream out of step and every later call
// on that connection would fail. The retry is safe because the tables only
// send SELECT statements.
func (q *clientQuerier) QueryRows(ctx context.Context, sql string) ([]map[string]string, error) {
	rows, err := q.query(ctx, sql)
	if err == nil {
		return rows, nil
	}
	if !isTransportError(err) || ctx.Err() != nil {
		return nil, fmt.Errorf("querying osquery: %w", err)
	}

	q.logger.WarnContext(ctx, "osquery query failed, reconnecting and retrying once",
		"socket", q.socket, "error", err)
	rows, err = q.query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("querying osquery after reconnecting: %w", err)
	}
	return rows, nil
}

// query runs sql on the current client and returns when the call finishes
// or ctx ends. A transport error retires the client.
//
// osquery-go checks ctx only while it waits for the client's lock. A call
// in progress ends only when osqueryd responds or the socket timeout
// expires, so when ctx ends first the call is abandoned and its client
// retired, and the next query connects afresh instead of queueing behind
// it. osqueryd still finishes the SQL.
func (q *clientQuerier) query(ctx context.Context, sql string) ([]map[string]string, error) {
	client, err := q.acquire()
	if err != nil {
		return nil, err
	}

	type result struct {
		rows []map[string]string
		err  error
	}
	results := make(chan result, 1)
	go func() {
		rows, err := client.QueryRowsContext(ctx, sql)
		if isTransportError(err) {
			q.retire(client)
		}
		q.release(client)
		results <- result{rows: rows, err: err}
	}()

	select {
	case r := <-results:
		return r.rows, r.err
	case <-ctx.Done():
		q.logger.DebugContext(ctx, "abandoning an osquery query at its deadline", "socket", q.socket, "reason", context.Cause(ctx).Error())
		q.retire(client)
		return nil, fmt.Errorf("osquery query timed out: %w", context.Cause(ctx))
	}
}

// acquire returns the current client, connecting first when there is none,
// and counts the caller as one of its calls.
func (q *clientQuerier) acquire() (*sharedClient, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client == nil {
		if err := q.connectLocked(); err != nil {
			return nil, err
		}
	}
	q.client.calls++
	return q.client, nil
}

// connectLocked opens a new current client. The caller holds q.mu.
//
// NOTE: on Unix, osquery-go's connect waits up to the query timeout for a
// missing socket file, so when osqueryd has gone this call blocks that
// long, and other queries wait for q.mu meanwhile. The server's ping ends
// the extension within an interval anyway.
func (q *clientQuerier) connectLocked() error {
	client, err := dialQueryClient(q.socket, q.timeout, q.waitTime)
	if err != nil {
		return fmt.Errorf("opening a query client on osquery socket %s: %w", q.socket, err)
	}
	q.client = &sharedClient{queryClient: client}
	return nil
}

// release ends one call on client and closes a retired client after its
// last call.
func (q *clientQuerier) release(client *sharedClient) {
	q.mu.Lock()
	client.calls--
	idle := client.calls == 0 && client.retired
	q.mu.Unlock()

	if idle {
		client.Close()
	}
}

// retire stops handing out client, and closes it when no call uses it.
func (q *clientQuerier) retire(client *sharedClient) {
	q.mu.Lock()
	if q.client == client {
		q.client = nil
	}
	alreadyRetired := client.retired
	client.retired = true
	idle := client.calls == 0
	q.mu.Unlock()

	if idle && !alreadyRetired {
		client.Close()
	}
}

// Close retires the current client. A call still in progress keeps its
// connection until it ends.
func (q *clientQuerier) Close() {
	q.mu.Lock()
	client := q.client
	q.mu.Unlock()

	if client != nil {
		q.retire(client)
	}
}

// isTransportError reports whether err came from the Thrift connection
// rather than from osqueryd's response or from waiting for the client's lock.
func isTransportError(err error) bool {
	var thriftErr thrift.TException
	return errors.As(err, &thriftErr)
}
