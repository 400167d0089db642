package windowstest

import (
	"context"
	"sync"
	"testing"

	"github.com/svclaunch/svclaunch/internal/telemetry"
	"github.com/svclaunch/svclaunch/internal/testrecordings"
)

// loadedRecordings caches recordings loaded by LoadRecording. No test
// changes a loaded batch, so every test of one binary shares it.
var loadedRecordings = struct {
	sync.Mutex
	byPath map[string]*telemetry.Batch
}{byPath: map[string]*telemetry.Batch{}}

// LoadRecording loads a recording below SVCLAUNCH_TESTDATA (a path such as
// testrecordings.EmpirePsExec) through the telemetry loader, once per test
// binary. It skips or fails the test as testrecordings.Path does.
func LoadRecording(t testing.TB, recording string) *telemetry.Batch {
	t.Helper()

	path := testrecordings.Path(t, recording)

	loadedRecordings.Lock()
	defer loadedRecordings.Unlock()

	batch, ok := loadedRecordings.byPath[path]
	if ok {
		return batch
	}

	batch, err := telemetry.LoadFile(context.Background(), path, telemetry.Options{})
	if err != nil {
		t.Fatalf("loading recording %s: %v", recording, err)
	}
	loadedRecordings.byPath[path] = batch
	return batch
}
