package extension

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// osquery-go's Run sends the results of its serving and pinging
		// goroutines on an unbuffered channel and reads only the first, so
		// the other goroutine stays blocked after Run returns. With
		// WithClient the pinging goroutine also keeps pinging until a ping
		// fails.
		goleak.IgnoreAnyFunction("github.com/osquery/osquery-go.(*ExtensionManagerServer).Run.func1"),
		goleak.IgnoreAnyFunction("github.com/osquery/osquery-go.(*ExtensionManagerServer).Run.func2"),
	)
}
