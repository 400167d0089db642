package hunt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/svclaunch/svclaunch/internal/engine"
	"github.com/svclaunch/svclaunch/internal/telemetry"
)

// input is one source of telemetry named on the command line, or the
// bundled sample.
type input struct {
	// name labels the input in messages: the path, "standard input" or the
	// sample's name.
	name string
	// open returns the content and its size in bytes (-1 when unknown).
	open func() (io.ReadCloser, int64, error)
}

// stdinName labels standard input in messages.
const stdinName = "standard input"

// inputsFor returns the inputs of files; "-" is standard input.
func inputsFor(files []string, stdin io.Reader) []input {
	inputs := make([]input, 0, len(files))
	for _, path := range files {
		if path == "-" {
			inputs = append(inputs, input{
				name: stdinName,
				open: func() (io.ReadCloser, int64, error) { return io.NopCloser(stdin), -1, nil },
			})
			continue
		}
		inputs = append(inputs, input{name: path, open: func() (io.ReadCloser, int64, error) { return openFile(path) }})
	}
	return inputs
}

// sampleInput returns the bundled sample as an input.
func sampleInput() input {
	return input{
		name: SampleName,
		open: func() (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(sample)), int64(len(sample)), nil
		},
	}
}

// openFile opens a regular file and returns its size. Its errors name the
// path and what to check, because os.Open's own wording ("open x: no such
// file or directory") reads as an internal failure.
func openFile(path string) (io.ReadCloser, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, 0, fmt.Errorf("cannot read %s: file not found: check the path", path)
		case errors.Is(err, fs.ErrPermission):
			return nil, 0, fmt.Errorf("cannot read %s: permission denied: check the file's permissions", path)
		}
		return nil, 0, fmt.Errorf("cannot read %s: %w", path, err)
	}

	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if info.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("cannot read %s: it is a directory: give the files in it", path)
	}
	return f, info.Size(), nil
}

// loader loads inputs into an engine and keeps what the summary reports.
type loader struct {
	engine   *engine.Engine
	opts     telemetry.Options
	progress progressFunc
	summary  *summary
	// seen holds a digest of every row stored, by table, to drop rows that
	// are loaded twice.
	seen map[string]map[[sha256.Size]byte]bool
}

// skipDuplicate is the summary's reason for rows dropped as duplicates.
const skipDuplicate = "row identical to one loaded before"

// progressFunc starts a progress display for one input; the returned
// reader counts bytes and the stop function clears the display.
type progressFunc func(name string, r io.Reader, size int64) (io.Reader, func())

// load reads one input into the engine. Its errors already name the input.
func (l *loader) load(ctx context.Context, in input) error {
	rc, size, err := in.open()
	if err != nil {
		return err
	}
	defer rc.Close()

	r, stop := l.progress(in.name, rc, size)
	batch, err := telemetry.Load(ctx, r, in.name, l.opts)
	stop()
	if err != nil {
		return err
	}

	if batchRows(batch) == 0 {
		l.summary.emptyInputs = append(l.summary.emptyInputs, emptyInput{name: in.name, skipped: batch.SkippedTotal()})
	}

	// Tables are inserted in a fixed order so that a failure is the same
	// from run to run.
	tables := make([]string, 0, len(batch.Rows))
	for table := range batch.Rows {
		tables = append(tables, table)
	}
	slices.Sort(tables)
	for _, table := range tables {
		batch.Rows[table] = l.dropDuplicates(table, batch.Rows[table], batch.Skipped)
		if err := l.engine.Insert(ctx, table, batch.Rows[table]); err != nil {
			return fmt.Errorf("storing the rows of %s: %w", in.name, err)
		}
	}

	l.summary.addBatch(in.name, batch)
	return nil
}

// batchRows returns the number of rows in b over all tables.
func batchRows(b *telemetry.Batch) int {
	total := 0
	for _, rows := range b.Rows {
		total += len(rows)
	}
	return total
}

// emptyInput is an input that yielded no rows, and how many of its events
// were skipped.
type emptyInput struct {
	name    string
	skipped int
}

// message returns the warning about the input, such as "no events in
// a.json".
func (e emptyInput) message() string {
	if e.skipped == 0 {
		return "no events in " + e.name
	}
	if e.skipped == 1 {
		return fmt.Sprintf("no events loaded from %s: its only event was skipped (see \"skipped\" for the reason)", e.name)
	}
	return fmt.Sprintf("no events loaded from %s: all %s were skipped (see \"skipped\" for the reasons)", e.name, plural(e.skipped, "event"))
}

// dropDuplicates returns rows without those identical, in every column, to
// a row stored before, and counts the dropped ones in skipped. Overlapping
// exports of one event log, or one file given twice, would otherwise store
// events twice, where osqueryd stores each event once, and query would
// count them twice. The detection does not depend on this check because it
// merges duplicate events itself.
func (l *loader) dropDuplicates(table string, rows []map[string]string, skipped map[string]int) []map[string]string {
	if l.seen == nil {
		l.seen = map[string]map[[sha256.Size]byte]bool{}
	}
	if l.seen[table] == nil {
		l.seen[table] = map[[sha256.Size]byte]bool{}
	}
	seen := l.seen[table]

	kept := rows[:0]
	for _, row := range rows {
		digest := rowDigest(row)
		if seen[digest] {
			skipped[skipDuplicate]++
			continue
		}
		seen[digest] = true
		kept = append(kept, row)
	}
	return kept
}

// rowDigest hashes a row's columns and values in column-name order. Each
// string is length-prefixed, so no two different rows share an encoding.
func rowDigest(row map[string]string) [sha256.Size]byte {
	names := make([]string, 0, len(row))
	for name := range row {
		names = append(names, name)
	}
	slices.Sort(names)

	h := sha256.New()
	var length [8]byte
	for _, name := range names {
		for _, s := range []string{name, row[name]} {
			binary.LittleEndian.PutUint64(length[:], uint64(len(s)))
			h.Write(length[:])
			h.Write([]byte(s))
		}
	}
	var digest [sha256.Size]byte
	h.Sum(digest[:0])
	return digest
}
