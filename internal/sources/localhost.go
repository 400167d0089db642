package sources

import "strings"

// AssignLocalHost names the computer in the events that carry no host name
// (those of a source built with an empty host, such as NewETW("")) and
// returns the name used. The Windows event tables name the computer by its
// DNS name (WORKSTATION6.theshire.local), while the operating system
// reports the short name (WORKSTATION6), and events of one process merge
// only under one spelling. So when exactly one host of the other events has
// local's first DNS label, compared without case, that spelling is used.
// When local is empty and the other events name exactly one host, that host
// is used. Otherwise local is used as it is.
func (e *Events) AssignLocalHost(local string) string {
	name := e.localHostSpelling(local)
	for i := range e.Processes {
		if e.Processes[i].Host == "" {
			e.Processes[i].Host = name
		}
	}
	for i := range e.Connections {
		if e.Connections[i].Host == "" {
			e.Connections[i].Host = name
		}
	}
	return name
}

// localHostSpelling returns the host name AssignLocalHost uses.
func (e *Events) localHostSpelling(local string) string {
	hosts := map[string]bool{}
	for i := range e.Processes {
		hosts[e.Processes[i].Host] = true
	}
	for i := range e.Connections {
		hosts[e.Connections[i].Host] = true
	}
	delete(hosts, "")

	var matches []string
	for host := range hosts {
		if local == "" || strings.EqualFold(firstLabel(host), firstLabel(local)) {
			matches = append(matches, host)
		}
	}
	if len(matches) == 1 {
		return matches[0]
	}
	return local
}
