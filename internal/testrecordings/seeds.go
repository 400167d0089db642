package testrecordings

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Seeds returns up to limit lines of a recording for which keep returns
// true (every line when keep is nil), without their line ends, for fuzz
// seed corpora. Unlike Path it never skips: when SVCLAUNCH_TESTDATA is unset
// it returns nil, so a fuzz target still runs on its hand-written seeds. It
// fails when the variable is set but the file cannot be read.
func Seeds(tb testing.TB, relative string, limit int, keep func(line []byte) bool) [][]byte {
	tb.Helper()

	root := os.Getenv(EnvVar)
	if root == "" {
		return nil
	}

	f, err := os.Open(filepath.Join(root, filepath.FromSlash(relative)))
	if err != nil {
		tb.Fatalf("reading seed lines of recording %s below %s=%s: %v", relative, EnvVar, root, err)
	}
	defer f.Close()

	var lines [][]byte
	scanner := bufio.NewScanner(f)
	scanner.Buffer(nil, 16<<20)
	for len(lines) < limit && scanner.Scan() {
		line := bytes.TrimRight(scanner.Bytes(), "\r")
		if keep == nil || keep(line) {
			lines = append(lines, bytes.Clone(line))
		}
	}
	if err := scanner.Err(); err != nil {
		tb.Fatalf("reading seed lines of recording %s: %v", relative, err)
	}
	return lines
}

// SeedFile returns the first limit bytes of a recording (all of it when
// limit is 0), or nil when SVCLAUNCH_TESTDATA is unset.
func SeedFile(tb testing.TB, relative string, limit int) []byte {
	tb.Helper()

	root := os.Getenv(EnvVar)
	if root == "" {
		return nil
	}

	content, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(relative)))
	if err != nil {
		tb.Fatalf("reading recording %s below %s=%s: %v", relative, EnvVar, root, err)
	}
	if limit > 0 && len(content) > limit {
		content = content[:limit]
	}
	return content
}
