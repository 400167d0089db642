package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/tables/remoteservicelaunches"
)

func TestMaxRowsPerSourceFlag(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantErr string
	}{
		{name: "default", want: remoteservicelaunches.DefaultMaxRowsPerSource},
		{name: "flag", args: []string{"--max-rows-per-source", "250000"}, want: 250_000},
		{name: "environment", env: map[string]string{"SVCLAUNCH_MAX_ROWS_PER_SOURCE": "60000"}, want: 60_000},
		{
			name: "flag over environment", args: []string{"--max-rows-per-source", "70000"},
			env: map[string]string{"SVCLAUNCH_MAX_ROWS_PER_SOURCE": "60000"}, want: 70_000,
		},
		{name: "zero", args: []string{"--max-rows-per-source", "0"}, wantErr: `invalid row cap "0"`},
		{name: "negative", args: []string{"--max-rows-per-source", "-1"}, wantErr: `invalid row cap "-1"`},
		{name: "not a number", args: []string{"--max-rows-per-source", "lots"}, wantErr: `invalid row cap "lots"`},
		{
			name: "invalid environment", env: map[string]string{"SVCLAUNCH_MAX_ROWS_PER_SOURCE": "1e5"},
			wantErr: "SVCLAUNCH_MAX_ROWS_PER_SOURCE",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			flags, err := parseExtensionFlags(append([]string{"--socket", "/s.em"}, tt.args...), environment(tt.env))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, flags.maxRowsPerSource)
			assert.Equal(t, tt.want, flags.tableConfig(nil, nil).MaxRowsPerSource)
		})
	}
}
