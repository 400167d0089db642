package osquerytest_test

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/osquerytest"
)

// lockedBuffer collects an extension's output, which the command's copying
// goroutines write while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLaunchExtension(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the launch test runs the POSIX start-up; osqueryd on Windows sets OSQUERY_EXTENSION to 1")
	}
	executable, err := os.Executable()
	require.NoError(t, err)

	tests := []struct {
		name    string
		verbose bool
		args    func(socket string) []string
	}{
		{
			name:    "verbose",
			verbose: true,
			args: func(socket string) []string {
				return []string{"--verbose", "--socket", socket, "--timeout", "3", "--interval", "1"}
			},
		},
		{
			name:    "quiet",
			verbose: false,
			args: func(socket string) []string {
				return []string{"--socket", socket, "--timeout", "3", "--interval", "1"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			output := &lockedBuffer{}
			s, _ := startStandIn(t, osquerytest.Options{Interval: time.Second, ExtensionOutput: output})
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("extension output:\n%s", output.String())
				}
			})

			cmd, err := osquerytest.LaunchExtension(testContext(t), executable, s, tt.verbose)
			require.NoError(t, err)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			_, err = s.WaitForExtension(testContext(t), helperExtensionName)
			require.NoError(t, err)
			rows, err := newClient(t, s).QueryRowsContext(testContext(t), "SELECT argv0, args, osquery_extension, pid, verbose FROM osquerytest_launch")
			require.NoError(t, err)
			require.Len(t, rows, 1)
			row := rows[0]

			var args []string
			require.NoError(t, json.Unmarshal([]byte(row["args"]), &args))
			require.Equal(t, tt.args(s.Path()), args)
			require.Equal(t, executable, row["argv0"])
			require.Equal(t, strconv.FormatBool(tt.verbose), row["verbose"])

			// osqueryd sets OSQUERY_EXTENSION in the forked child, so it
			// holds the extension's own process ID.
			require.Equal(t, strconv.Itoa(cmd.Process.Pid), row["pid"])
			require.Equal(t, row["pid"], row["osquery_extension"])

			s.Stop()
			select {
			case err := <-exited:
				require.NoError(t, err)
			case <-testContext(t).Done():
				t.Fatal("extension process did not exit after the manager stopped")
			}
		})
	}
}
