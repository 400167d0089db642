package extension

import (
	"context"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeStrings returns a buffer holding the strings as Thrift's binary
// protocol writes them.
func writeStrings(t *testing.T, values ...string) *thrift.TMemoryBuffer {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	writer := thrift.NewTBinaryProtocolConf(buf, nil)
	for _, v := range values {
		require.NoError(t, writer.WriteString(context.Background(), v))
	}
	return buf
}

func TestResultProtocolReadsStrings(t *testing.T) {
	long := strings.Repeat("EventData ", 200)
	veryLong := strings.Repeat("x", 3*maxUpfrontRead+17)
	values := []string{"computer_name", "", "WORKSTATION6", long, veryLong, "computer_name"}
	p := newResultProtocol(writeStrings(t, values...))

	var got []string
	for range values {
		s, err := p.ReadString(t.Context())
		require.NoError(t, err)
		got = append(got, s)
	}

	require.Len(t, got, len(values))
	for i := range values {
		assert.Equal(t, values[i], got[i], "string %d", i)
	}
	assert.Same(t, unsafe.StringData(got[0]), unsafe.StringData(got[5]), "a repeated column name is not interned")
}

func TestResultProtocolBoundsInterning(t *testing.T) {
	values := make([]string, maxInterned+10)
	for i := range values {
		values[i] = strings.Repeat("v", i%maxInternedLength+1) + string(rune('a'+i/maxInternedLength%26)) + string(rune('a'+i/(maxInternedLength*26)))
	}
	p := newResultProtocol(writeStrings(t, values...))

	for i := range values {
		s, err := p.ReadString(t.Context())
		require.NoError(t, err)
		require.Equal(t, values[i], s)
	}
	assert.LessOrEqual(t, len(p.interned), maxInterned)
}

func TestResultProtocolRejectsBadLength(t *testing.T) {
	for _, size := range []int32{-1, 200 * 1024 * 1024} {
		buf := thrift.NewTMemoryBuffer()
		require.NoError(t, thrift.NewTBinaryProtocolConf(buf, nil).WriteI32(context.Background(), size))
		p := newResultProtocol(buf)

		_, err := p.ReadString(t.Context())

		require.Error(t, err, "length %d", size)
		assert.Contains(t, err.Error(), "invalid string length")
	}
}

func TestResultProtocolFailsOnTruncatedString(t *testing.T) {
	for _, value := range []string{"short", strings.Repeat("y", 1000)} {
		buf := writeStrings(t, value)
		truncated := thrift.NewTMemoryBuffer()
		_, err := truncated.Write(buf.Bytes()[:buf.Len()-1])
		require.NoError(t, err)
		p := newResultProtocol(truncated)

		_, err = p.ReadString(t.Context())

		assert.Error(t, err, "length %d", len(value))
	}
}
