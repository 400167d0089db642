// Package testrecordings finds the real telemetry recordings that the tests
// read in place. The environment variable SVCLAUNCH_TESTDATA names the data
// folder (the one that holds CATALOG.md and recordings/); .ci/run sets it.
package testrecordings

import (
	"os"
	"path/filepath"
	"testing"
)

// EnvVar is the environment variable that names the recordings folder.
const EnvVar = "SVCLAUNCH_TESTDATA"

// Path returns the absolute path of a file below the recordings folder, such
// as "recordings/otrf/x.json". The test is skipped when SVCLAUNCH_TESTDATA is
// unset, and fails when it is set but the file is missing, so that a broken
// CI set-up cannot pass by skipping.
func Path(t testing.TB, relative string) string {
	t.Helper()

	root := os.Getenv(EnvVar)
	if root == "" {
		t.Skipf("%s is not set; set it to the folder that holds recordings/ to run this test", EnvVar)
	}

	full := filepath.Join(root, filepath.FromSlash(relative))
	if _, err := os.Stat(full); err != nil {
		t.Fatalf("recording %s not found below %s=%s: %v", relative, EnvVar, root, err)
	}
	return full
}

// Empire PsExec and the other recordings the tests use, relative to the
// recordings folder.
const (
	EmpirePsExec           = "recordings/otrf/empire_psexec_dcerpc_tcp_svcctl_2020-09-20121608.json"
	EmpireFindLocalAdmin   = "recordings/otrf/empire_find_localadmin_smb_svcctl_OpenSCManager_2020-09-22021559.json"
	EmpireRunKeysReboot    = "recordings/otrf/empire_persistence_registry_modification_run_keys_standard_user_2020-09-04030609.filtered.json"
	MeterpreterPsExecEVTX  = "recordings/evtx-attack-samples/LM_sysmon_psexec_smb_meterpreter.evtx"
	MeterpreterPsExecJSONL = "recordings/evtx-attack-samples/LM_sysmon_psexec_smb_meterpreter.jsonl"
	UnquotedServiceEVTX    = "recordings/evtx-attack-samples/privesc_unquoted_svc_sysmon_1_11.evtx"
	UnquotedServiceJSONL   = "recordings/evtx-attack-samples/privesc_unquoted_svc_sysmon_1_11.jsonl"
	BenignSysmonEVTX       = "recordings/evtx-samples/sysmon.evtx"
	BenignSysmonJSONL      = "recordings/evtx-samples/sysmon.jsonl"
)
