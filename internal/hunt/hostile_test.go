package hunt

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

// sampleWithCmdline writes the bundled sample with the command line of the
// detected child (its Sysmon 1 and Security 4688 events) replaced, as an
// attacker who names their own command line would, and returns the path.
func sampleWithCmdline(t *testing.T, cmdline string) string {
	t.Helper()

	var out bytes.Buffer
	replaced := 0
	scanner := bufio.NewScanner(bytes.NewReader(sample))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		line := scanner.Bytes()
		var event map[string]any
		require.NoError(t, json.Unmarshal(line, &event))

		sysmonChild := event["EventID"] == float64(1) && strings.HasSuffix(str(event["ParentImage"]), `\services.exe`)
		securityChild := event["EventID"] == float64(4688) && strings.HasSuffix(str(event["ParentProcessName"]), `\services.exe`)
		if sysmonChild || securityChild {
			event["CommandLine"] = cmdline
			var err error
			line, err = json.Marshal(event)
			require.NoError(t, err)
			replaced++
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	require.NoError(t, scanner.Err())
	require.Equal(t, 2, replaced, "the sample's child has one Sysmon 1 and one Security 4688 event")

	path := filepath.Join(t.TempDir(), "hostile.json")
	require.NoError(t, os.WriteFile(path, out.Bytes(), 0o600))
	return path
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// requireNoRawControls fails when out contains a control or format
// character other than allowed, the line ends the format itself writes.
func requireNoRawControls(t *testing.T, out string, allowed string) {
	t.Helper()
	for i, r := range out {
		if strings.ContainsRune(allowed, r) {
			continue
		}
		unsafe := unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
		require.False(t, unsafe, "raw %U at byte %d", r, i)
	}
}

func TestHostileCommandLines(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		cmdline string
		// visible is how table and CSV output show the command line.
		visible string
		// decoded is the value the JSON output carries: the command line
		// up to any NUL, because osquery passes result text as C strings.
		decoded string
	}{
		{
			name:    "ansi escape sequences",
			cmdline: "cmd.exe /c \x1b[2J\x1b[1;32mall clear\x1b[0m",
			visible: `cmd.exe /c \x1b[2J\x1b[1;32mall clear\x1b[0m`,
			decoded: "cmd.exe /c \x1b[2J\x1b[1;32mall clear\x1b[0m",
		},
		{
			name:    "carriage return",
			cmdline: "cmd.exe /c evil.exe\rcmd.exe /c benign.exe",
			visible: `cmd.exe /c evil.exe\rcmd.exe /c benign.exe`,
			decoded: "cmd.exe /c evil.exe\rcmd.exe /c benign.exe",
		},
		{
			name:    "nul",
			cmdline: "cmd.exe\x00 /c hidden.exe",
			visible: "cmd.exe",
			decoded: "cmd.exe",
		},
		{
			name:    "spreadsheet formula",
			cmdline: "=cmd|' /C calc'!A0",
			visible: "=cmd|' /C calc'!A0",
			decoded: "=cmd|' /C calc'!A0",
		},
		{
			name:    "c1 control and bidi override",
			cmdline: "cmd.exe /c \u009b2J \u202eexe.txt \u2028next",
			visible: `cmd.exe /c \u009b2J \u202eexe.txt \u2028next`,
			decoded: "cmd.exe /c \u009b2J \u202eexe.txt \u2028next",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := sampleWithCmdline(t, tt.cmdline)

			table := hunt(t, "--format", "table", path)
			require.Equal(t, ExitOK, table.code, table.stderr)
			requireNoRawControls(t, table.stdout, "\n")
			require.Contains(t, table.stdout, "cmdline = "+tt.visible+"\n")

			csvOut := hunt(t, "--format", "csv", path)
			require.Equal(t, ExitOK, csvOut.code, csvOut.stderr)
			requireNoRawControls(t, strings.ReplaceAll(csvOut.stdout, "\r\n", ""), "")
			records, err := csv.NewReader(strings.NewReader(csvOut.stdout)).ReadAll()
			require.NoError(t, err)
			require.Len(t, records, 2)
			want := tt.visible
			if strings.HasPrefix(want, "=") {
				want = "'" + want
			}
			require.Equal(t, want, records[1][5], "cmdline is the sixth column")

			for _, format := range []string{"json", "ndjson"} {
				out := hunt(t, "--format", format, path)
				require.Equal(t, ExitOK, out.code, out.stderr)
				requireNoRawControls(t, out.stdout, "\n")
				var rows []map[string]string
				if format == "json" {
					rows = decodeJSONRows(t, out.stdout)
				} else {
					rows = decodeNDJSONRows(t, out.stdout)
				}
				require.Len(t, rows, 1)
				require.Equal(t, tt.decoded, rows[0]["cmdline"], format)
			}
		})
	}
}

// The summary and errors quote host and file names from the telemetry and
// the command line; they reach the terminal escaped.
func TestHostileFileName(t *testing.T) {
	t.Parallel()

	path := filepath.Join(t.TempDir(), "evil\x1b[2J\r.json")
	got := hunt(t, path)
	require.Equal(t, ExitRuntime, got.code)
	requireNoRawControls(t, got.stderr, "\n")
	require.Contains(t, got.stderr, `evil\x1b[2J\r.json`)
}
