package hunt

import _ "embed"

// SampleName labels the bundled sample in messages.
const SampleName = "bundled sample empire_psexec_excerpt.json"

// sample is the bundled sample: 42 unchanged lines of the OTRF
// Security-Datasets recording of Empire's Invoke-PsExec against WORKSTATION6,
// under the MIT licence. NOTICE names the source and copyright holder, and
// testdata/README.md lists the lines kept. hunt finds one detection in it.
//
//go:embed testdata/empire_psexec_excerpt.json
var sample []byte
