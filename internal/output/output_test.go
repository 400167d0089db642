package output

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hostileCmdlines are command lines an attacker could leave in telemetry to
// attack the person reading svclaunch's output.
var hostileCmdlines = []string{
	"cmd.exe /c \x1b[2J\x1b[1;31mall clear\x1b[0m",
	"powershell.exe -enc AAAA\rsvchost.exe -k netsvcs",
	"cmd.exe\x00hidden",
	"=cmd|' /C calc'!A0",
	"notepad.exe \u202etxt.exe",
	"a\u2028b\u2029c",
	"c1 \u009b31m csi",
	"del \x7f and tab\tand newline\n",
	"-2+3+cmd|' /C calc'!A0",
	"@SUM(1+9)*cmd|' /C calc'!A0",
	"+cmd",
	"\t=1+1",
	"\r=1+1",
}

// plainRows are rows whose values every format carries unchanged.
var plainRows = []map[string]string{
	{
		"time":     "1600618616",
		"datetime": "2020-09-20T16:16:56.597Z",
		"host":     "WORKSTATION6.theshire.local",
		"pid":      "9028",
		"path":     `C:\Windows\System32\cmd.exe`,
		"cmdline":  `C:\Windows\System32\cmd.exe /C start /b %COMSPEC% /c "echo, ""quoted"" & exit"`,
		"parent":   "-1",
	},
	{
		"time":     "1600618617",
		"datetime": "2020-09-20T16:16:57Z",
		"host":     "ワークステーション",
		"pid":      "4",
		"path":     "",
		"cmdline":  "日本語 and ünïcödé",
		"parent":   "0",
	},
}

var plainColumns = []string{"time", "datetime", "host", "pid", "path", "cmdline", "parent"}

func hostileRows() []map[string]string {
	rows := make([]map[string]string, len(hostileCmdlines))
	for i, cmdline := range hostileCmdlines {
		rows[i] = map[string]string{"pid": "1", "cmdline": cmdline}
	}
	return rows
}

func write(t *testing.T, format Format, columns []string, rows []map[string]string, width int) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, format, columns, rows, Options{Width: width}))
	return buf.String()
}

// requireNoRawControls fails when out contains a control or format character
// other than the line ends the format itself writes.
func requireNoRawControls(t *testing.T, out string, allowed ...rune) {
	t.Helper()
	require.True(t, utf8.ValidString(out), "output is not valid UTF-8")
	for i, r := range out {
		if strings.ContainsRune(string(allowed), r) {
			continue
		}
		require.False(t, needsEscape(r), "raw %U at byte %d in %q", r, i, out)
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()

	for _, name := range []string{"table", "json", "ndjson", "csv", " CSV "} {
		f, err := ParseFormat(name)
		require.NoError(t, err, name)
		require.Equal(t, strings.ToLower(strings.TrimSpace(name)), string(f))
	}

	_, err := ParseFormat("yaml")
	require.EqualError(t, err, `unknown output format "yaml": use one of table, json, ndjson, csv`)
}

func TestEscapeText(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain path", `C:\Windows\System32\cmd.exe /c dir`, `C:\Windows\System32\cmd.exe /c dir`},
		{"ansi sequence", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"carriage return", "evil\rgood", `evil\rgood`},
		{"nul", "a\x00b", `a\x00b`},
		{"tab and newline", "a\tb\nc", `a\tb\nc`},
		{"del", "a\x7fb", `a\x7fb`},
		{"c1 csi", "a\u009b31mb", `a\u009b31mb`},
		{"bidi override", "a\u202eexe.txt", `a\u202eexe.txt`},
		{"line separator", "a\u2028b", `a\u2028b`},
		{"zero width space", "cmd\u200b.exe", `cmd\u200b.exe`},
		{"tag character", "a\U000E0041b", `a\U000e0041b`},
		{"invalid utf-8", "a\xffb\xc3", `a\xffb\xc3`},
		{"wide text kept", "日本語 ünïcödé", "日本語 ünïcödé"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, EscapeText(tt.in))
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()

	rows := append(append([]map[string]string{}, plainRows...), hostileRows()...)
	columns := append(append([]string{}, plainColumns...), "extra")
	out := write(t, FormatJSON, columns, rows, 0)

	var decoded []map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &decoded))
	require.Len(t, decoded, len(rows))
	for i, row := range rows {
		for _, name := range columns {
			require.Equal(t, row[name], decoded[i][name], "row %d column %s", i, name)
		}
	}
	requireNoRawControls(t, out, '\n')
}

func TestJSONKeepsColumnOrder(t *testing.T) {
	t.Parallel()

	out := write(t, FormatJSON, []string{"z", "a", "m"}, []map[string]string{{"a": "1", "m": "2", "z": "3"}}, 0)
	require.Equal(t, "[\n  {\"z\":\"3\",\"a\":\"1\",\"m\":\"2\"}\n]\n", out)
}

func TestJSONEscapesUnsafeCharacters(t *testing.T) {
	t.Parallel()

	out := write(t, FormatJSON, []string{"v"}, []map[string]string{
		{"v": "\x1b[2J \r \x00 \x7f \u009b \u202e \u2028 <&> \U000E0041"},
	}, 0)
	require.Equal(t, `[
  {"v":"\u001b[2J \r \u0000 \u007f \u009b \u202e \u2028 <&> \udb40\udc41"}
]
`, out)
}

func TestNDJSONRoundTrip(t *testing.T) {
	t.Parallel()

	rows := append(append([]map[string]string{}, plainRows...), hostileRows()...)
	columns := append(append([]string{}, plainColumns...), "extra")
	out := write(t, FormatNDJSON, columns, rows, 0)

	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, len(rows))
	for i, line := range lines {
		var decoded map[string]string
		require.NoError(t, json.Unmarshal([]byte(line), &decoded), "line %d", i+1)
		for _, name := range columns {
			require.Equal(t, rows[i][name], decoded[name], "row %d column %s", i, name)
		}
	}
	requireNoRawControls(t, out, '\n')
}

func TestCSVRoundTrip(t *testing.T) {
	t.Parallel()

	out := write(t, FormatCSV, plainColumns, plainRows, 0)

	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, records, len(plainRows)+1)
	require.Equal(t, plainColumns, records[0])
	for i, row := range plainRows {
		for c, name := range plainColumns {
			require.Equal(t, row[name], records[i+1][c], "row %d column %s", i, name)
		}
	}
	require.True(t, strings.HasSuffix(out, "\r\n"), "CSV lines end in CRLF")
}

func TestCSVNeutralisesHostileValues(t *testing.T) {
	t.Parallel()

	out := write(t, FormatCSV, []string{"pid", "cmdline"}, hostileRows(), 0)

	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	got := make([]string, 0, len(records)-1)
	for _, record := range records[1:] {
		got = append(got, record[1])
	}
	require.Equal(t, []string{
		`cmd.exe /c \x1b[2J\x1b[1;31mall clear\x1b[0m`,
		`powershell.exe -enc AAAA\rsvchost.exe -k netsvcs`,
		`cmd.exe\x00hidden`,
		`'=cmd|' /C calc'!A0`,
		`notepad.exe \u202etxt.exe`,
		`a\u2028b\u2029c`,
		`c1 \u009b31m csi`,
		`del \x7f and tab\tand newline\n`,
		`'-2+3+cmd|' /C calc'!A0`,
		`'@SUM(1+9)*cmd|' /C calc'!A0`,
		`'+cmd`,
		`'\t=1+1`,
		`'\r=1+1`,
	}, got)

	// The only raw CR and LF are the record separators.
	requireNoRawControls(t, strings.ReplaceAll(out, "\r\n", ""))
}

func TestCSVKeepsNumbers(t *testing.T) {
	t.Parallel()

	out := write(t, FormatCSV, []string{"parent", "offset", "name"}, []map[string]string{
		{"parent": "-1", "offset": "-4.5", "name": "-Inf"},
	}, 0)
	require.Equal(t, "parent,offset,name\r\n-1,-4.5,'-Inf\r\n", out)
}

func TestTableBoxed(t *testing.T) {
	t.Parallel()

	out := write(t, FormatTable, []string{"pid", "path"}, []map[string]string{
		{"pid": "9028", "path": `C:\Windows\System32\cmd.exe`},
		{"pid": "4", "path": "日本"},
	}, 120)
	require.Equal(t, `+------+-----------------------------+
| pid  | path                        |
+------+-----------------------------+
| 9028 | C:\Windows\System32\cmd.exe |
| 4    | 日本                        |
+------+-----------------------------+
`, out)
}

func TestTableCutsLongValues(t *testing.T) {
	t.Parallel()

	out := write(t, FormatTable, []string{"pid", "cmdline"}, []map[string]string{
		{"pid": "9028", "cmdline": strings.Repeat("powershell -enc ", 10)},
	}, 40)
	require.Equal(t, `+------+-------------------------------+
| pid  | cmdline                       |
+------+-------------------------------+
| 9028 | powershell -enc powershell -… |
+------+-------------------------------+
`, out)
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		require.LessOrEqual(t, displayWidth(line), 40, line)
	}
}

func TestTableBlocksWhenTooWide(t *testing.T) {
	t.Parallel()

	columns := []string{"time", "connection_datetime", "cmdline"}
	out := write(t, FormatTable, columns, []map[string]string{
		{"time": "1600618616", "connection_datetime": "2020-09-20T16:16:56.019Z", "cmdline": strings.Repeat("x", 40)},
		{"time": "1600618617", "connection_datetime": "", "cmdline": "cmd"},
	}, 40)
	require.Equal(t, `               time = 1600618616
connection_datetime = 2020-09-20T16:16:…
            cmdline = xxxxxxxxxxxxxxxxx…

               time = 1600618617
connection_datetime =
            cmdline = cmd
`, out)
}

func TestTableNeutralisesHostileValues(t *testing.T) {
	t.Parallel()

	for _, width := range []int{30, 200} {
		out := write(t, FormatTable, []string{"pid", "cmdline"}, hostileRows(), width)
		requireNoRawControls(t, out, '\n')
		require.Contains(t, out, `\x1b[2J`)
		require.Contains(t, out, `\x00`)
		require.NotContains(t, out, "\r")
	}
}

func TestTableEscapesColumnNames(t *testing.T) {
	t.Parallel()

	out := write(t, FormatTable, []string{"a\x1b[31m"}, []map[string]string{{"a\x1b[31m": "1"}}, 120)
	require.Contains(t, out, `a\x1b[31m`)
	requireNoRawControls(t, out, '\n')
}

func TestEmptyResult(t *testing.T) {
	t.Parallel()

	columns := []string{"pid", "path"}
	require.Empty(t, write(t, FormatTable, columns, nil, 0))
	require.Equal(t, "[]\n", write(t, FormatJSON, columns, nil, 0))
	require.Empty(t, write(t, FormatNDJSON, columns, nil, 0))
	require.Equal(t, "pid,path\r\n", write(t, FormatCSV, columns, nil, 0))
}

func TestColumnsOf(t *testing.T) {
	t.Parallel()

	require.Equal(t, []string{"a", "b", "c"}, ColumnsOf([]map[string]string{{"c": "1", "a": ""}, {"b": "2"}}))
	require.Empty(t, ColumnsOf(nil))
}

func TestWriteWithoutColumnsSortsKeys(t *testing.T) {
	t.Parallel()

	out := write(t, FormatNDJSON, nil, []map[string]string{{"b": "2", "a": "1"}}, 0)
	require.Equal(t, "{\"a\":\"1\",\"b\":\"2\"}\n", out)
}

func TestRuneWidth(t *testing.T) {
	t.Parallel()

	require.Equal(t, 1, runeWidth('a'))
	require.Equal(t, 2, runeWidth('日'))
	require.Equal(t, 0, runeWidth('\u0301'))
	require.True(t, unicode.Is(unicode.Mn, '\u0301'))
}
