package osquerytest

import (
	"errors"
	"net"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"
)

// connListener is a Thrift server transport that remembers its open
// connections. TSimpleServer.Stop waits until every connection's request loop
// ends, and an extension keeps its connection to the manager open between
// pings, so Stop must close those connections itself.
type connListener struct {
	listener net.Listener

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

var _ thrift.TServerTransport = (*connListener)(nil)

func newConnListener(listener net.Listener) *connListener {
	return &connListener{listener: listener, conns: map[*trackedConn]struct{}{}}
}

// Listen does nothing, because the socket listens from the start.
func (l *connListener) Listen() error {
	return nil
}

// Accept waits for the next connection.
func (l *connListener) Accept() (thrift.TTransport, error) {
	conn, err := l.listener.Accept()
	if err != nil {
		return nil, thrift.NewTTransportExceptionFromError(err)
	}

	tracked := &trackedConn{Conn: conn, listener: l}
	l.mu.Lock()
	closed := l.closed
	if !closed {
		l.conns[tracked] = struct{}{}
	}
	l.mu.Unlock()

	// A connection that arrives while closeAll runs is dropped at once.
	if closed {
		conn.Close()
		return nil, thrift.NewTTransportExceptionFromError(errors.New("manager socket closed"))
	}
	return thrift.NewTSocketFromConnConf(tracked, nil), nil
}

// Close stops accepting connections.
func (l *connListener) Close() error {
	return l.listener.Close()
}

// Interrupt stops accepting connections. TSimpleServer.Stop calls it.
func (l *connListener) Interrupt() error {
	return l.Close()
}

// closeAll stops accepting connections and ends the open ones. On Unix,
// closing the listener also removes the socket file.
func (l *connListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for conn := range l.conns {
		conns = append(conns, conn)
	}
	l.mu.Unlock()

	l.listener.Close()
	for _, conn := range conns {
		conn.end()
	}
}

// trackedConn removes itself from its listener when closed.
type trackedConn struct {
	net.Conn
	listener *connListener
}

// end makes the connection's request loop finish. Shutting down the read
// side of a Unix socket lets a request in progress send its response. The
// next read then returns EOF, which TSimpleServer treats as a normal end,
// whereas a closed connection makes it log an error. Other kinds of
// connection are closed.
func (c *trackedConn) end() {
	if conn, ok := c.Conn.(interface{ CloseRead() error }); ok && conn.CloseRead() == nil {
		return
	}
	c.Close()
}

func (c *trackedConn) Close() error {
	c.listener.mu.Lock()
	delete(c.listener.conns, c)
	c.listener.mu.Unlock()
	return c.Conn.Close()
}
