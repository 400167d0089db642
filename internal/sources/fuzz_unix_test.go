package sources

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeUnixRows decodes one process_events row and one socket_events
// row built from the same fields. Each row becomes exactly one process
// start, one inbound connection or one counted skip.
func FuzzDecodeUnixRows(f *testing.F) {
	f.Fuzz(func(t *testing.T, action, pid, parent, path, cmdline, localAddress, localPort, remoteAddress, remotePort, protocol, unixTime string) {
		process := map[string]string{"pid": pid, "parent": parent, "path": path, "cmdline": cmdline, "time": unixTime}
		socket := map[string]string{
			"action": action, "pid": pid, "path": path, "protocol": protocol,
			"local_address": localAddress, "local_port": localPort,
			"remote_address": remoteAddress, "remote_port": remotePort, "time": unixTime,
		}

		for _, source := range Unix("web01") {
			var rows []map[string]string
			if source.Table() == "process_events" {
				rows = []map[string]string{process}
			} else {
				rows = []map[string]string{socket}
			}

			events := source.Decode(rows)
			requirePlausibleEvents(t, events)
			require.Equal(t, 1, decodeOutcomes(events), "%s: a row must become one event or one counted skip", source.Name())
		}
	})
}
