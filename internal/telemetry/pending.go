package telemetry

import (
	"bufio"
	"context"
	"fmt"
)

const evtxMagic = "ElfFile\x00"

// NOTE: the .evtx reader is not written yet; .evtx input is rejected with an
// error until it is.
func loadEvtx(_ context.Context, _ *bufio.Reader, name string, _ Options) (*Batch, error) {
	return nil, fmt.Errorf("loading %s: .evtx files are not supported yet", name)
}
