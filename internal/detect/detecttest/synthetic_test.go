package detecttest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svclaunch/svclaunch/internal/detect"
	"github.com/svclaunch/svclaunch/internal/detect/detecttest"
)

func TestSyntheticRepeatable(t *testing.T) {
	t.Parallel()

	procs, conns := detecttest.Synthetic(2000, 7)
	require.Len(t, procs, 2000)
	require.Len(t, conns, 2000)

	again, againConns := detecttest.Synthetic(2000, 7)
	require.Equal(t, procs, again)
	require.Equal(t, conns, againConns)

	other, _ := detecttest.Synthetic(2000, 8)
	require.NotEqual(t, procs, other)
}

func TestSyntheticHasLaunches(t *testing.T) {
	t.Parallel()

	procs, conns := detecttest.Synthetic(20000, 1)
	detections := detect.Detect(procs, conns, detect.DefaultOptions())
	require.NotEmpty(t, detections)
	require.Less(t, len(detections), len(procs)/20, "most children have no connection in the window")
}
