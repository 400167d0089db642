package telemetry

import (
	"math"
	"testing"
	"time"

	"github.com/Velocidex/ordereddict"
	"github.com/stretchr/testify/require"
)

func TestParseTimestamp(t *testing.T) {
	t.Parallel()

	tests := []struct {
		input    string
		want     time.Time
		fraction bool
		zoned    bool
		ok       bool
	}{
		{input: "2020-09-20 12:16:56", want: time.Date(2020, 9, 20, 12, 16, 56, 0, time.UTC), ok: true},
		{input: "2019-04-30 20:26:51.793589", want: time.Date(2019, 4, 30, 20, 26, 51, 793589000, time.UTC), fraction: true, ok: true},
		{input: "2020-09-20T16:16:09.362Z", want: time.Date(2020, 9, 20, 16, 16, 9, 362000000, time.UTC), fraction: true, zoned: true, ok: true},
		{input: "2020-09-20T12:16:09-04:00", want: time.Date(2020, 9, 20, 16, 16, 9, 0, time.UTC), zoned: true, ok: true},
		{input: "2020-09-20T17:46:09+0530", want: time.Date(2020, 9, 20, 12, 16, 9, 0, time.UTC), zoned: true, ok: true},
		{input: "2020-06-17T14:27:41.39457381234Z", want: time.Date(2020, 6, 17, 14, 27, 41, 394573812, time.UTC), fraction: true, zoned: true, ok: true},
		{input: "2020-02-30 00:00:00"},
		{input: "2020-09-20 12:16"},
		{input: "2020-09-20 12:16:56."},
		{input: "2020-09-20 12:16:56 EDT"},
		{input: "yesterday at noon!!"},
	}

	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			t.Parallel()

			got, fraction, zoned, ok := parseTimestamp(tt.input)
			require.Equal(t, tt.ok, ok)
			if !tt.ok {
				return
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.fraction, fraction)
			require.Equal(t, tt.zoned, zoned)
		})
	}
}

func TestDecodeObjectKeepsOrderAndValues(t *testing.T) {
	t.Parallel()

	obj, err := decodeObject([]byte(` { "b" : 1 , "a":"x\"y\u00e9\ud83d\ude00\/","n":null,"t":true,"f":false,"arr":[1, {"k":"]"}],"big":-9214364837600034816,"b":2}  `))
	require.NoError(t, err)

	names := make([]string, len(obj))
	for i, m := range obj {
		names[i] = m.name
	}
	require.Equal(t, []string{"b", "a", "n", "t", "f", "arr", "big"}, names)

	require.Equal(t, "2", valueText(obj[0].value), "a repeated key keeps its last value")
	require.Equal(t, "x\"yé😀/", valueText(obj[1].value))
	require.Equal(t, "", valueText(obj[2].value))
	require.Equal(t, "true", valueText(obj[3].value))
	require.Equal(t, "false", valueText(obj[4].value))
	require.Equal(t, `[1,{"k":"]"}]`, valueText(obj[5].value))
	require.Equal(t, "-9214364837600034816", valueText(obj[6].value))

	_, err = decodeObject([]byte(`{"a":1`))
	require.Error(t, err)
	_, err = decodeObject([]byte(`[1,2]`))
	require.ErrorIs(t, err, errNotObject)
	_, err = decodeObject([]byte(`{"a":1} {"b":2}`))
	require.Error(t, err)
}

func TestEventDataJSONEscapesLikeBoost(t *testing.T) {
	t.Parallel()

	fields := []dataField{
		{name: "Image", value: `C:\Windows\cmd.exe`},
		{name: "Url", value: "http://x/\"q\"\t\n\x01é"},
	}
	require.Equal(t, `{"EventData":{"Image":"C:\\Windows\\cmd.exe","Url":"http:\/\/x\/\"q\"\t\n\u0001é"}}`, eventDataJSON(fields, false))
	require.Equal(t, `{"EventData":""}`, eventDataJSON(nil, false))
	require.Equal(t, `{"EventData":["a","b"]}`, eventDataJSON([]dataField{{value: "a"}, {value: "b"}}, false))
	require.Equal(t, `{"UserData":{"k":"v"}}`, eventDataJSON([]dataField{{name: "k", value: "v"}}, true))
}

func TestKeywordsHex(t *testing.T) {
	t.Parallel()

	require.Equal(t, "0x8020000000000000", keywordsHex("-9214364837600034816"))
	require.Equal(t, "0x8000000000000000", keywordsHex("-9223372036854775808"))
	require.Equal(t, "0x80000000000000", keywordsHex("36028797018963968"))
	require.Equal(t, "0x0", keywordsHex("0"))
	require.Equal(t, "0x8000000000000000", keywordsHex("0x8000000000000000"))
	require.Equal(t, "0x8000000000000000", keywordsHex("9223372036854775808"))
}

func TestNXLogLevel(t *testing.T) {
	t.Parallel()

	require.Equal(t, "0", nxlogLevel("AUDIT_SUCCESS", "2"))
	require.Equal(t, "0", nxlogLevel("AUDIT_FAILURE", "4"))
	require.Equal(t, "4", nxlogLevel("INFO", "2"))
	require.Equal(t, "2", nxlogLevel("ERROR", "4"))
	require.Equal(t, "3", nxlogLevel("", "3"))
	require.Equal(t, "", nxlogLevel("", ""))
}

func TestPythonEvtxValue(t *testing.T) {
	t.Parallel()

	require.Equal(t, "true", pythonEvtxValue("True"))
	require.Equal(t, "false", pythonEvtxValue("False"))
	require.Equal(t, "0x3e7", pythonEvtxValue("0x00000000000003e7"))
	require.Equal(t, "0x1000", pythonEvtxValue("0x00001000"))
	require.Equal(t, "0x0", pythonEvtxValue("0x00000000"))
	require.Equal(t, "0x3e7", pythonEvtxValue("0x3e7"))
	require.Equal(t, "DWORD (0x00000003)", pythonEvtxValue("DWORD (0x00000003)"))
	require.Equal(t, "0x0000000G", pythonEvtxValue("0x0000000G"))
}

func TestRoundOffsetAndMajority(t *testing.T) {
	t.Parallel()

	require.Equal(t, -4*time.Hour, roundOffset(-4*time.Hour+3*time.Second))
	require.Equal(t, -4*time.Hour, roundOffset(-4*time.Hour-400*time.Millisecond))
	require.Equal(t, 5*time.Hour+45*time.Minute, roundOffset(5*time.Hour+45*time.Minute+2*time.Second))

	info := majorityOffset(map[time.Duration]int{-4 * time.Hour: 10, -5 * time.Hour: 3})
	require.Equal(t, OffsetInfo{Offset: -4 * time.Hour, Method: OffsetLearned, Events: 10, Disagreeing: 3}, info)

	tie := majorityOffset(map[time.Duration]int{-4 * time.Hour: 2, 4 * time.Hour: 2, time.Hour: 2})
	require.Equal(t, time.Hour, tie.Offset, "ties go to the offset closest to zero")
}

func TestShortNameKeepsAddresses(t *testing.T) {
	t.Parallel()

	require.True(t, sameShortName("WORKSTATION6", "workstation6.theshire.local"))
	require.False(t, sameShortName("10.0.0.1", "10.0.0.2"))
	require.False(t, sameShortName("", ""))
}

func TestRenderValue(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		kind byte
		data []byte
		want string
	}{
		{name: "string", kind: valueString, data: []byte{'c', 0, 'm', 0, 'd', 0, 0, 0}, want: "cmd"},
		{name: "hex64", kind: valueHexInt64, data: []byte{0xe7, 0x03, 0, 0, 0, 0, 0, 0}, want: "0x3e7"},
		{name: "hex32", kind: valueHexInt32, data: []byte{0x00, 0x10, 0, 0}, want: "0x1000"},
		{name: "uint32", kind: valueUInt32, data: []byte{0xc0, 0x02, 0, 0}, want: "704"},
		{name: "int32", kind: valueInt32, data: []byte{0xff, 0xff, 0xff, 0xff}, want: "-1"},
		{name: "uint16", kind: valueUInt16, data: []byte{0xbd, 0x01}, want: "445"},
		{name: "bool", kind: valueBool, data: []byte{0, 0, 0, 0}, want: "false"},
		{name: "guid", kind: valueGUID, data: []byte{0x5f, 0x38, 0x70, 0x57, 0x2a, 0xc2, 0xe0, 0x43, 0xbf, 0x4c, 0x06, 0xf5, 0x69, 0x8f, 0xfb, 0xd9}, want: "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}"},
		{name: "sid", kind: valueSID, data: []byte{1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0}, want: "S-1-5-18"},
		{name: "binary", kind: valueBinary, data: []byte{0x0a, 0xbc}, want: "0ABC"},
		{name: "null", kind: valueNull, want: ""},
		{name: "filetime", kind: valueFileTime, data: []byte{0x12, 0xcf, 0x72, 0x0b, 0x93, 0xff, 0xd4, 0x01}, want: "2019-04-30T20:26:51.7935890Z"},
		{name: "string array", kind: valueString | valueArray, data: []byte{'a', 0, 0, 0, 'b', 0, 0, 0}, want: "a,b"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tt.want, renderValue(tt.kind, tt.data))
		})
	}
}

func TestGUIDText(t *testing.T) {
	t.Parallel()

	require.Equal(t, "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}", guidText("5770385F-C22A-43E0-BF4C-06F5698FFBD9"))
	require.Equal(t, "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}", guidText("{5770385F-C22A-43E0-BF4C-06F5698FFBD9}"))
	require.Equal(t, "not a guid", guidText("not a guid"))
}

func TestKnownTablesFromSchema(t *testing.T) {
	t.Parallel()

	tables := knownTables()
	require.Len(t, tables, len(resultsTables), "every results-log table is in osqueryschema")
	for _, table := range tables {
		require.NotEmpty(t, table.columns, table.name)
		require.NotEmpty(t, table.visible, table.name)
	}
}

func TestEvtxTimeCreatedRange(t *testing.T) {
	t.Parallel()

	system := func(seconds float64) *ordereddict.Dict {
		created := ordereddict.NewDict().Set("SystemTime", seconds)
		return ordereddict.NewDict().Set("TimeCreated", created)
	}
	secondsOf := func(year int) float64 {
		return float64(time.Date(year, 5, 6, 21, 1, 36, 0, time.UTC).Unix())
	}

	tests := []struct {
		name    string
		seconds float64
		ok      bool
	}{
		{name: "year 2020", seconds: secondsOf(2020), ok: true},
		{name: "year 1601", seconds: secondsOf(1601), ok: true},
		{name: "year 9999", seconds: secondsOf(9999), ok: true},
		{name: "year 10000", seconds: secondsOf(10000)},
		{name: "year 50237", seconds: secondsOf(50237)},
		{name: "before 1601", seconds: secondsOf(1600)},
		{name: "NaN", seconds: math.NaN()},
		{name: "infinity", seconds: math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			created, ok := evtxTimeCreated(system(tt.seconds), nil)
			require.Equal(t, tt.ok, ok, "time %v", created)
			if ok {
				_, err := time.Parse(time.RFC3339Nano, FormatDatetime(created, true))
				require.NoError(t, err)
			}
		})
	}

	t.Run("FILETIME of year 60056", func(t *testing.T) {
		t.Parallel()

		const largest = math.MaxUint64
		values := &recordSubstitutions{filetimes: []uint64{largest}}
		_, ok := evtxTimeCreated(system(filetimeSeconds(largest)), values)
		require.False(t, ok)
	})
}
