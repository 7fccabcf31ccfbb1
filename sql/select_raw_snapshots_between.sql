-- The snapshots a recomputation of a period needs from the raw store: those fetched in
-- ($fetched_after, $fetched_until], and those of the FX sources ($fx_sources) fetched in
-- ($fx_after, $fetched_until] (a price converts at a rate published up to some days before).
select
    snapshot_id, sha256, source, url, provider, fetched_at, http_status, content_type, byte_size, storage_path
from raw_snapshots
where fetched_at <= $fetched_until
  and (fetched_at > $fetched_after or (list_contains($fx_sources, source) and fetched_at > $fx_after))
order by fetched_at, snapshot_id;
