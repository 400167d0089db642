package pack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ExtensionName is the name the svclaunch extension registers with
// osqueryd; the discovery query looks for it.
const ExtensionName = "svclaunch"

// DiscoveryQuery returns a row only where the extension is loaded, so the
// pack's queries never run into "no such table" on other hosts.
const DiscoveryQuery = "SELECT 1 FROM osquery_extensions WHERE name = '" + ExtensionName + "'"

// OsqueryPack is an osquery JSON pack, the value of one entry under "packs"
// in osqueryd's configuration.
type OsqueryPack struct {
	Platform  string                  `json:"platform"`
	Version   string                  `json:"version"`
	Discovery []string                `json:"discovery"`
	Queries   map[string]OsqueryQuery `json:"queries"`
}

// OsqueryQuery is one query of an osquery pack. osquery ignores description
// and value; they are there for people reading the pack, as in osquery's own
// packs.
type OsqueryQuery struct {
	Query       string `json:"query"`
	Interval    int    `json:"interval"`
	Snapshot    bool   `json:"snapshot"`
	Removed     bool   `json:"removed"`
	Platform    string `json:"platform"`
	Version     string `json:"version"`
	Description string `json:"description"`
	Value       string `json:"value"`
	Denylist    bool   `json:"denylist"`
}

// NewOsqueryPack builds the osquery pack from the scheduled queries. Ad hoc
// queries (interval 0) are left out because osquery would reject them.
func NewOsqueryPack(queries []Query) (OsqueryPack, error) {
	p := OsqueryPack{
		Discovery: []string{DiscoveryQuery},
		Queries:   make(map[string]OsqueryQuery),
	}

	var platforms, versions []string
	for _, q := range queries {
		if !q.Scheduled() {
			continue
		}
		p.Queries[q.Name] = OsqueryQuery{
			Query:       q.SQL,
			Interval:    q.Interval,
			Snapshot:    q.Logging.Snapshot(),
			Removed:     q.Logging.Removed(),
			Platform:    q.Platform(),
			Version:     q.MinOsqueryVersion,
			Description: q.Description,
			Value:       q.Value,
			Denylist:    q.Denylist,
		}
		platforms = append(platforms, q.Platforms...)
		versions = append(versions, q.MinOsqueryVersion)
	}
	if len(p.Queries) == 0 {
		return OsqueryPack{}, fmt.Errorf("building the osquery pack: no scheduled query found")
	}

	// The pack-level filters must let every query through, so they are the
	// union of the platforms and the oldest of the versions.
	var packPlatforms []string
	for _, known := range knownPlatforms {
		if slices.Contains(platforms, known) {
			packPlatforms = append(packPlatforms, known)
		}
	}
	p.Platform = strings.Join(packPlatforms, ",")
	slices.SortFunc(versions, compareVersions)
	p.Version = versions[0]
	return p, nil
}

// MarshalOsquery returns the osquery pack as indented JSON with a final
// newline. Map keys come out sorted, so the output is stable.
func MarshalOsquery(queries []Query) ([]byte, error) {
	p, err := NewOsqueryPack(queries)
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	encoder := json.NewEncoder(&buf)
	// osquery reads SQL such as "a < b" verbatim; HTML escapes would only
	// make the file harder to read.
	encoder.SetEscapeHTML(false)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(p); err != nil {
		return nil, fmt.Errorf("encoding the osquery pack: %w", err)
	}
	return buf.Bytes(), nil
}

// compareVersions orders N.N.N version strings numerically. Validate has
// already checked their form.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range min(len(as), len(bs)) {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x - y
		}
	}
	return len(as) - len(bs)
}
