package hunt

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// The bundled sample keeps whole lines of the original recording, unchanged
// and in their original order, as NOTICE states.
func TestSampleLinesAreUnchanged(t *testing.T) {
	t.Parallel()

	original, err := os.ReadFile(testrecordings.Path(t, testrecordings.EmpirePsExec))
	require.NoError(t, err)
	sum := sha256.Sum256(original)
	require.Equal(t, "968c4b699f7239d106577b2b8e206edfaf812f193a60e663966258af67a56acc", hex.EncodeToString(sum[:]),
		"the recording is the one NOTICE names")

	originalLines := bytes.SplitAfter(original, []byte("\n"))
	next := 0
	kept := 0
	scanner := bufio.NewScanner(bytes.NewReader(sample))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		line := append(scanner.Bytes(), '\n')
		for next < len(originalLines) && !bytes.Equal(originalLines[next], line) {
			next++
		}
		require.Less(t, next, len(originalLines), "sample line %d is not a later line of the recording", kept+1)
		next++
		kept++
	}
	require.NoError(t, scanner.Err())
	require.Equal(t, 42, kept)
	require.LessOrEqual(t, len(sample), 150_000, "the sample stays small")
}
