package extension

import (
	"context"
	"fmt"
	"io"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"
)

// Limits of resultProtocol's string interning. Column names and repeated
// short values (channel names, event ids, host names) fit; the map holds at
// most about maxInterned * (maxInternedLength + 32) bytes.
const (
	maxInternedLength = 64
	maxInterned       = 4096
)

// maxUpfrontRead is the longest string that ReadString allocates at its
// declared length. Longer ones grow as their bytes arrive, so that a broken
// length field cannot allocate the maximum message size at once.
const maxUpfrontRead = 1 << 20

// resultProtocol is Thrift's binary protocol with a cheaper ReadString for
// query results, which are lists of maps of strings: every row repeats the
// column names. thrift's own ReadString allocates twice for strings of 64
// bytes or more and, above 512 bytes, grows a bytes.Buffer several times.
// resultProtocol allocates each string once, and returns strings of up to
// maxInternedLength bytes that it has seen before without allocating.
type resultProtocol struct {
	*thrift.TBinaryProtocol
	reader   io.Reader
	maxSize  int32
	short    [maxInternedLength]byte
	interned map[string]string
}

// newResultProtocol returns the protocol reading from trans, with thrift's
// default limits.
func newResultProtocol(trans thrift.TTransport) *resultProtocol {
	cfg := &thrift.TConfiguration{}
	return &resultProtocol{
		TBinaryProtocol: thrift.NewTBinaryProtocolConf(trans, cfg),
		reader:          trans,
		maxSize:         cfg.GetMaxMessageSize(),
		interned:        make(map[string]string),
	}
}

// ReadString reads a length-prefixed string, rejecting a negative length or
// one above the maximum message size as thrift's ReadString does.
func (p *resultProtocol) ReadString(ctx context.Context) (string, error) {
	size, err := p.ReadI32(ctx)
	if err != nil {
		return "", err
	}
	if size < 0 || size > p.maxSize {
		return "", thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT,
			fmt.Errorf("invalid string length %d: the maximum is %d", size, p.maxSize))
	}
	if size == 0 {
		return "", nil
	}

	if size <= maxInternedLength {
		buf := p.short[:size]
		if _, err := io.ReadFull(p.reader, buf); err != nil {
			return "", thrift.NewTProtocolException(err)
		}
		// The lookup converts buf without allocating.
		if s, ok := p.interned[string(buf)]; ok {
			return s, nil
		}
		s := string(buf)
		if len(p.interned) < maxInterned {
			p.interned[s] = s
		}
		return s, nil
	}

	buf, err := p.readLong(int(size))
	if err != nil {
		return "", thrift.NewTProtocolException(err)
	}
	// buf is never written again, so the string may share its bytes, as
	// strings.Builder's String does.
	return unsafe.String(unsafe.SliceData(buf), len(buf)), nil
}

// readLong reads size bytes into a new slice.
func (p *resultProtocol) readLong(size int) ([]byte, error) {
	if size <= maxUpfrontRead {
		buf := make([]byte, size)
		_, err := io.ReadFull(p.reader, buf)
		return buf, err
	}

	buf := make([]byte, 0, maxUpfrontRead)
	for len(buf) < size {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		chunk := buf[len(buf):min(cap(buf), size)]
		n, err := io.ReadFull(p.reader, chunk)
		buf = buf[:len(buf)+n]
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}
