package sources

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// fieldValues returns the value each name reads as.
func fieldValues(data eventData) map[string]string {
	out := map[string]string{}
	for _, field := range data {
		out[field.name] = data.raw(field.name)
	}
	return out
}

// TestScanEventDataMatchesEncodingJSON checks that the scanner reads the same
// values as encoding/json, and leaves to it what it does not handle.
func TestScanEventDataMatchesEncodingJSON(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		data    string
		scanned bool
	}{
		{name: "plain", data: `{"EventData":{"ProcessId":"704","Image":"C:\\Windows\\System32\\services.exe"}}`, scanned: true},
		{name: "spaces", data: " {\n \"EventData\" : { \"a\" : \"1\" , \"b\":\"2\" } }\n", scanned: true},
		{name: "empty", data: `{"EventData":{}}`, scanned: true},
		{name: "escaped quote and slash", data: `{"EventData":{"CommandLine":"cmd /c \"echo \\\"hi\\\"\" \/x"}}`, scanned: true},
		{name: "control escapes", data: `{"EventData":{"a":"l1\nl2\r\n\t\b\f"}}`, scanned: true},
		{name: "unicode escapes", data: `{"EventData":{"a":"\u00fc\u65e5 \ud83d\ude42"}}`, scanned: true},
		{name: "lone surrogates", data: `{"EventData":{"a":"x\ud83dy\ude42z\ud83d\u0041"}}`, scanned: true},
		{name: "raw unicode", data: `{"EventData":{"a":"ünï 日本 🙂"}}`, scanned: true},
		{name: "escaped name", data: `{"EventData":{"Process\u0049d":"704"}}`, scanned: true},
		{name: "repeated name keeps the last", data: `{"EventData":{"a":"1","a":"2"}}`, scanned: true},
		{name: "number and bool values", data: `{"EventData":{"a":5,"b":true,"c":null,"d":"x"}}`},
		{name: "other top-level key", data: `{"EventData":{"a":"1"},"UserData":{"b":"2"}}`},
		{name: "invalid UTF-8", data: "{\"EventData\":{\"a\":\"\xff\"}}"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			want, err := decodeEventData(tt.data)
			require.NoError(t, err)

			scanned, ok := scanEventData(tt.data, nil)
			require.Equal(t, tt.scanned, ok)
			if ok {
				require.Equal(t, fieldValues(want), fieldValues(scanned))
			}

			got, err := parseEventData(tt.data, nil)
			require.NoError(t, err)
			require.Equal(t, fieldValues(want), fieldValues(got))
		})
	}
}

func TestParseEventDataInvalid(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		data      string
		noData    bool
		validJSON bool
	}{
		{name: "truncated", data: `{"EventData":{"a":"1"`},
		{name: "bad escape", data: `{"EventData":{"a":"\q"}}`},
		{name: "short unicode escape", data: `{"EventData":{"a":"\u12"}}`},
		{name: "trailing garbage", data: `{"EventData":{"a":"1"}} x`},
		{name: "string instead of object", data: `"EventData"`, validJSON: true},
		{name: "array of values", data: `{"EventData":["a","b"]}`, noData: true, validJSON: true},
		{name: "no EventData", data: `{"UserData":{"a":"1"}}`, noData: true, validJSON: true},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := parseEventData(tt.data, nil)
			require.Error(t, err)
			require.Equal(t, tt.noData, errors.Is(err, errNoEventData), "error %v", err)

			var anything any
			require.Equal(t, tt.validJSON, json.Unmarshal([]byte(tt.data), &anything) == nil, "validity as encoding/json sees it")
		})
	}
}
