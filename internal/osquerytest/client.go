package osquerytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go/gen/osquery"

	"github.com/svclaunch/svclaunch/internal/engine"
)

// extensionClient is one connection to an extension's socket. osqueryd opens a
// new connection for every call and every ping, and so does the stand-in.
type extensionClient struct {
	conn   net.Conn
	client *osquery.ExtensionClient
	stop   func() bool
}

// openExtension connects to the extension with this UUID. The connection is
// closed when ctx ends, which aborts a call in progress. The error text is
// osqueryd's status message for the failure.
func (s *Server) openExtension(ctx context.Context, uuid osquery.ExtensionRouteUUID) (*extensionClient, error) {
	path := s.ExtensionPath(uuid)

	// osqueryd checks the path once (extensionPathActive without a timeout)
	// before it connects.
	if !socketExists(path) {
		return nil, errors.New("Extension socket not available: " + path)
	}

	conn, err := dial(path, s.opts.CallTimeout)
	if err != nil {
		return nil, errors.New("Extension call failed: " + err.Error())
	}

	socket := thrift.NewTSocketFromConnConf(conn, &thrift.TConfiguration{
		ConnectTimeout: s.opts.CallTimeout,
		SocketTimeout:  s.opts.CallTimeout,
	})
	c := &extensionClient{
		conn:   conn,
		client: osquery.NewExtensionClientFactory(thrift.NewTBufferedTransport(socket, thriftBufferSize), thrift.NewTBinaryProtocolFactoryConf(nil)),
	}

	// TSocket resets its deadline on every read, so a context deadline can
	// only be enforced by closing the connection.
	c.stop = context.AfterFunc(ctx, func() { conn.Close() })
	return c, nil
}

func (c *extensionClient) Close() {
	c.stop()
	c.conn.Close()
}

// callExtension sends one registry call to an extension. A connection or
// transport failure becomes a status 1 response with osqueryd's message.
func (s *Server) callExtension(ctx context.Context, uuid osquery.ExtensionRouteUUID, registryName, item string, request osquery.ExtensionPluginRequest) *osquery.ExtensionResponse {
	c, err := s.openExtension(ctx, uuid)
	if err != nil {
		return failedResponse(err.Error())
	}
	defer c.Close()

	response, err := c.client.Call(ctx, registryName, item, request)
	if err != nil {
		return failedResponse("Extension call failed: " + err.Error())
	}
	if response.GetStatus() == nil {
		return failedResponse("Extension call failed: response has no status")
	}
	return response
}

// pingExtension pings an extension on a new connection and returns an error
// when the ping fails or its status is not success.
func (s *Server) pingExtension(ctx context.Context, uuid osquery.ExtensionRouteUUID) error {
	c, err := s.openExtension(ctx, uuid)
	if err != nil {
		return err
	}
	defer c.Close()

	status, err := c.client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("pinging extension %d: %w", uuid, err)
	}
	if status.GetCode() != codeSuccess {
		return fmt.Errorf("pinging extension %d: status %d: %s", uuid, status.GetCode(), status.GetMessage())
	}
	return nil
}

// generateFunc returns the engine's generate function for an extension table:
// it sends osqueryd's generate request with the query context to the table's
// current owner.
func (s *Server) generateFunc(table string) engine.GenerateFunc {
	return func(ctx context.Context, queryContextJSON string) ([]map[string]string, error) {
		s.mu.Lock()
		uuid, ok := s.registry.owner("table", table)
		s.mu.Unlock()

		// osqueryd detaches the table of an extension that goes away, so
		// SQLite reports it as missing.
		if !ok {
			return nil, errors.New("no such table: " + table)
		}

		start := time.Now()
		response := s.callExtension(ctx, uuid, "table", table, osquery.ExtensionPluginRequest{
			"action":  "generate",
			"context": queryContextJSON,
		})

		// osqueryd's xFilter makes the status message the table's error
		// message, which becomes the query's SQLite error message.
		if response.GetStatus().GetCode() != codeSuccess {
			s.log.Debug("extension table failed", "table", table, "uuid", uuid, "message", response.GetStatus().GetMessage())
			return nil, errors.New(response.GetStatus().GetMessage())
		}
		s.log.Debug("extension table generated", "table", table, "uuid", uuid, "rows", len(response.GetResponse()), "duration", time.Since(start))
		return response.GetResponse(), nil
	}
}
