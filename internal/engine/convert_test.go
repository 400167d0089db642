package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCInteger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"42", 42, true},
		{"  -7", -7, true},
		{"+5", 5, true},
		{"0x294", 660, true},
		{"0X1f", 31, true},
		{"010", 8, true},
		{"08", 0, true},
		{"0x", 0, true},
		{"12abc", 12, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{"abc", 0, false},
		{"-", 0, false},
		{" ", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseCInteger(tt.in)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestToSQLiteValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sqlType string
		value   string
		present bool
		want    any
	}{
		{"missing text", "TEXT", "", false, nil},
		{"empty text", "TEXT", "", true, ""},
		{"blob as text", "BLOB", "ab", true, "ab"},
		{"empty integer", "INTEGER", "", true, nil},
		{"integer over 32 bits", "INTEGER", "2147483648", true, nil},
		{"integer at 32 bits", "INTEGER", "-2147483648", true, int64(math.MinInt32)},
		{"bigint hex", "BIGINT", "0x10", true, int64(16)},
		{"unsigned bigint", "UNSIGNED BIGINT", "18446744073709551615", true, nil},
		{"double", "DOUBLE", "2.5", true, 2.5},
		{"double trailing text", "DOUBLE", "2.5s", true, nil},
		{"double leading space", "DOUBLE", " 1e3", true, 1000.0},
		{"double hex", "DOUBLE", "0x1A", true, 26.0},
		{"double empty", "DOUBLE", "", true, nil},
		{"unknown type", "UNKNOWN", "1", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, toSQLiteValue(tt.sqlType, tt.value, tt.present))
		})
	}
}

func TestFormatDouble(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{3, "3.0"},
		{-1.5, "-1.5"},
		{0.1, "0.1"},
		{1.0 / 3, "0.333333333333333"},
		{123456789012345678, "1.23456789012346e+17"},
		{1e15, "1e+15.0"},
		{1e14, "100000000000000.0"},
		{2.5e-7, "2.5e-07"},
		{math.Inf(1), "inf.0"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, formatDouble(tt.in))
		})
	}
}

func TestSQLiteRealText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   float64
		want string
	}{
		{5, "5.0"},
		{5.25, "5.25"},
		{1e20, "1.0e+20"},
		{-2.5e-7, "-2.5e-07"},
		{math.Inf(-1), "-Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, sqliteRealText(tt.in))
		})
	}
}
