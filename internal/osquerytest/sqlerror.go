package osquerytest

import (
	"errors"

	"github.com/svclaunch/svclaunch/internal/engine"
)

// sqliteMessage returns the message osqueryd sends for a failed query:
// SQLite's sqlite3_errmsg text, such as `near "SELEC": syntax error`. An error
// that does not come from the engine's SQLite keeps its own text.
func sqliteMessage(err error) string {
	if queryErr, ok := errors.AsType[*engine.QueryError](err); ok {
		return queryErr.Message
	}
	return err.Error()
}
