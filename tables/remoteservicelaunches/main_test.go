package remoteservicelaunches_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind, such as
// a source query that outlives its generate call.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
