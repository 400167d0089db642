package osquerytest_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/osquery/osquery-go"
	"github.com/osquery/osquery-go/plugin/table"
	"go.uber.org/goleak"
)

// helperExtensionName and helperTableName name the extension that this test
// binary becomes when LaunchExtension starts it.
const (
	helperExtensionName = "osquerytest_helper"
	helperTableName     = "osquerytest_launch"
)

func TestMain(m *testing.M) {
	// LaunchExtension starts this binary the way osqueryd starts an
	// extension: OSQUERY_EXTENSION set and --verbose or --socket first.
	// Test flags never look like that.
	if os.Getenv("OSQUERY_EXTENSION") != "" && len(os.Args) > 1 && (os.Args[1] == "--verbose" || os.Args[1] == "--socket") {
		os.Exit(runHelperExtension(os.Args))
	}

	goleak.VerifyTestMain(m,
		// osquery-go's Run sends the results of its serving and pinging
		// goroutines on an unbuffered channel and reads only the first, so
		// the other goroutine stays blocked after Run returns.
		goleak.IgnoreAnyFunction("github.com/osquery/osquery-go.(*ExtensionManagerServer).Run.func1"),
		goleak.IgnoreAnyFunction("github.com/osquery/osquery-go.(*ExtensionManagerServer).Run.func2"),
	)
}

// runHelperExtension is a minimal autoloaded extension, written like a real
// one: it parses osqueryd's flags and serves one table whose single row
// reports the arguments and environment it was started with.
func runHelperExtension(args []string) int {
	flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
	verbose := flags.Bool("verbose", false, "log more")
	socket := flags.String("socket", "", "path of osqueryd's extension manager socket")
	timeout := flags.Int("timeout", 3, "seconds to wait for the socket")
	interval := flags.Int("interval", 3, "seconds between pings of osqueryd")
	if err := flags.Parse(args[1:]); err != nil {
		return 2
	}

	argsJSON, err := json.Marshal(args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "encoding arguments:", err)
		return 1
	}
	row := map[string]string{
		"argv0":             args[0],
		"args":              string(argsJSON),
		"osquery_extension": os.Getenv("OSQUERY_EXTENSION"),
		"pid":               strconv.Itoa(os.Getpid()),
		"verbose":           strconv.FormatBool(*verbose),
	}

	server, err := osquery.NewExtensionManagerServer(helperExtensionName, *socket,
		osquery.ServerTimeout(time.Duration(*timeout)*time.Second),
		osquery.ServerPingInterval(time.Duration(*interval)*time.Second),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating extension server:", err)
		return 1
	}
	server.RegisterPlugin(table.NewPlugin(helperTableName,
		[]table.ColumnDefinition{
			table.TextColumn("argv0"),
			table.TextColumn("args"),
			table.TextColumn("osquery_extension"),
			table.BigIntColumn("pid"),
			table.TextColumn("verbose"),
		},
		func(ctx context.Context, queryContext table.QueryContext) ([]map[string]string, error) {
			return []map[string]string{row}, nil
		},
	))

	// Run returns when osqueryd goes away, which is how the tests end this
	// process.
	if err := server.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "extension stopped:", err)
	}
	return 0
}
