package extension

import (
	"log/slog"
	"sync"

	"github.com/osquery/osquery-go"
	osquerygen "github.com/osquery/osquery-go/gen/osquery"
)

// registrationClient is the client through which osquery-go's server
// registers and pings. It records the UUID that osqueryd assigns, which
// osquery-go keeps private, so that the logs can name the registration.
type registrationClient struct {
	*osquery.ExtensionManagerClient
	logger *slog.Logger

	mu   sync.Mutex
	uuid osquerygen.ExtensionRouteUUID
}

// RegisterExtension registers with osqueryd and logs the assigned UUID.
func (c *registrationClient) RegisterExtension(info *osquerygen.InternalExtensionInfo, registry osquerygen.ExtensionRegistry) (*osquerygen.ExtensionStatus, error) {
	status, err := c.ExtensionManagerClient.RegisterExtension(info, registry)
	if err != nil || status.Code != 0 {
		// osquery-go's Start returns this error and Run passes it on, so
		// it is logged once, where Run's caller reports it.
		return status, err
	}

	c.mu.Lock()
	c.uuid = status.UUID
	c.mu.Unlock()

	tables := make([]string, 0, len(registry["table"]))
	for name := range registry["table"] {
		tables = append(tables, name)
	}
	c.logger.Info("extension registered", "uuid", status.UUID, "name", info.Name, "tables", tables)
	return status, nil
}

// UUID returns the UUID that osqueryd assigned, or 0 before registration.
func (c *registrationClient) UUID() osquerygen.ExtensionRouteUUID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uuid
}
