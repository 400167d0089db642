package telemetry

import (
	"bufio"
	"context"
	"fmt"
)

const evtxMagic = "ElfFile\x00"

// NOTE: the ECS, osquery results-log and .evtx readers are not written yet;
// these inputs are rejected with an error until they are.
func decodeECS(object) (winEvent, string) { return winEvent{}, "ECS layout not supported yet" }

func newResultsDecoder(b *Batch, _ Options) lineDecoder {
	return newEventCollector(b, Options{}, func(object) (winEvent, string) {
		return winEvent{}, "osquery results logs not supported yet"
	})
}

func loadEvtx(_ context.Context, _ *bufio.Reader, name string, _ Options) (*Batch, error) {
	return nil, fmt.Errorf("loading %s: .evtx files are not supported yet", name)
}
