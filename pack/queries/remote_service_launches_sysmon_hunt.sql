-- name: remote_service_launches_sysmon_hunt
-- description: Ad hoc hunt for CAR-2014-03-005 in plain osquery SQL, for
--   Windows hosts that do not run the svclaunch extension: joins Sysmon
--   network connections (event 3) with Sysmon process creations (event 1) of
--   the same services.exe instance.
-- value: Each row is one child of services.exe that started 0 to 1000 ms
--   after services.exe accepted a connection from another host, with the
--   same columns as remote_service_launches where Sysmon has the data.
--   Sysmon's millisecond UtcTime is the clock, so time_precision is ms. As
--   in the table, pid is -1 when the event forwarder dropped Sysmon's
--   ProcessId.
-- response: Treat a row as you would a remote_service_launches row. Hosts that
--   return rows here should get the extension so the detection runs on a
--   schedule.
-- notes: Run it as a Fleet live query or with osqueryi --connect to osqueryd's
--   extension socket, never on a schedule. A scheduled query that reads an
--   evented table without a time constraint gets only the rows newer than its
--   previous run (events_optimize), and two scans in one query share that
--   marker, so the second scan loses rows. The time >= bounds below switch
--   that off only on osquery 5.9.1 and later, and naming windows_events in a
--   schedule also raises its events_expiry to three times the interval. The
--   join uses the connection's ProcessGuid = the child's ParentProcessGuid,
--   which survives pid reuse and exports that lack ProcessId. The local side
--   is the address found in interface_addresses, because Sysmon versions
--   disagree on which side of an inbound connection they call Source.
-- platform: windows
-- interval: 0
-- logging: snapshot
-- min_osquery_version: 5.9.1
-- denylist: true
WITH
  child AS MATERIALIZED (
    SELECT
      computer_name AS host,
      json_extract(data, '$.EventData.ProcessGuid') AS guid,
      json_extract(data, '$.EventData.ParentProcessGuid') AS parent_guid,
      json_extract(data, '$.EventData.UtcTime') AS utc,
      coalesce(CAST(json_extract(data, '$.EventData.ProcessId') AS INTEGER), -1) AS pid,
      json_extract(data, '$.EventData.Image') AS path,
      json_extract(data, '$.EventData.CommandLine') AS cmdline,
      json_extract(data, '$.EventData.User') AS username,
      coalesce(CAST(json_extract(data, '$.EventData.ParentProcessId') AS INTEGER), -1) AS parent,
      json_extract(data, '$.EventData.ParentImage') AS parent_path
    FROM windows_events
    WHERE time >= (SELECT unix_time FROM time) - 3600
      AND lower(source) = 'microsoft-windows-sysmon/operational'
      AND eventid = 1
      AND lower(json_extract(data, '$.EventData.ParentImage')) LIKE '%\services.exe'
  ),
  connection AS MATERIALIZED (
    SELECT
      computer_name AS host,
      json_extract(data, '$.EventData.ProcessGuid') AS guid,
      json_extract(data, '$.EventData.UtcTime') AS utc,
      json_extract(data, '$.EventData.Protocol') AS protocol,
      json_extract(data, '$.EventData.SourceIp') AS source_ip,
      CAST(json_extract(data, '$.EventData.SourcePort') AS INTEGER) AS source_port,
      json_extract(data, '$.EventData.DestinationIp') AS destination_ip,
      CAST(json_extract(data, '$.EventData.DestinationPort') AS INTEGER) AS destination_port,
      json_extract(data, '$.EventData.SourceIp') IN (SELECT address FROM interface_addresses) AS source_is_local
    FROM windows_events
    WHERE time >= (SELECT unix_time FROM time) - 3600
      AND lower(source) = 'microsoft-windows-sysmon/operational'
      AND eventid = 3
      AND lower(json_extract(data, '$.EventData.Initiated')) = 'false'
  ),
  inbound AS (
    SELECT
      host,
      guid,
      utc,
      protocol,
      CASE WHEN source_is_local THEN source_ip ELSE destination_ip END AS local_address,
      CASE WHEN source_is_local THEN source_port ELSE destination_port END AS local_port,
      CASE WHEN source_is_local THEN destination_ip ELSE source_ip END AS remote_address,
      CASE WHEN source_is_local THEN destination_port ELSE source_port END AS remote_port
    FROM connection
  ),
  pair AS (
    SELECT
      child.host,
      child.guid,
      child.utc,
      child.pid,
      child.path,
      child.cmdline,
      child.username,
      child.parent,
      child.parent_path,
      inbound.utc AS connection_utc,
      inbound.protocol,
      inbound.local_address,
      inbound.local_port,
      inbound.remote_address,
      inbound.remote_port,
      CAST(round((julianday(child.utc) - julianday(inbound.utc)) * 86400000.0) AS INTEGER) AS delay_ms
    FROM child
    JOIN inbound
      ON inbound.host = child.host
      AND inbound.guid = child.parent_guid
    WHERE inbound.remote_address NOT LIKE '127.%'
      AND inbound.remote_address NOT LIKE '::ffff:127.%'
      AND inbound.remote_address NOT IN ('::1', '0:0:0:0:0:0:0:1')
      AND inbound.remote_address NOT IN (SELECT address FROM interface_addresses)
  )
SELECT
  CAST(strftime('%s', utc) AS INTEGER) AS time,
  strftime('%Y-%m-%dT%H:%M:%fZ', utc) AS datetime,
  host,
  pid,
  path,
  cmdline,
  username,
  parent,
  parent_path,
  CAST(strftime('%s', connection_utc) AS INTEGER) AS connection_time,
  strftime('%Y-%m-%dT%H:%M:%fZ', connection_utc) AS connection_datetime,
  protocol,
  local_address,
  local_port,
  remote_address,
  remote_port,
  min(delay_ms) AS delay_ms,
  'ms' AS time_precision,
  count(*) AS connection_count,
  'sysmon' AS process_sources,
  'sysmon' AS connection_sources
FROM pair
WHERE delay_ms >= 0
  AND delay_ms <= 1000
GROUP BY host, guid
ORDER BY host, time, guid;
