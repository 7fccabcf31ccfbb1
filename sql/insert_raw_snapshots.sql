-- Copy snapshot records (snapshot_batch, registered by pipeline.verify) into a scratch warehouse, so that
-- its bodies are parsed again from the raw store as if freshly collected.
insert into raw_snapshots (
    snapshot_id, sha256, source, url, provider, fetched_at, http_status, content_type, byte_size, storage_path,
    imported_at, valid_days, valid_until
)
select snapshot_id, sha256, source, url, provider, fetched_at, http_status, content_type, byte_size, storage_path,
       imported_at, valid_days, valid_until
from snapshot_batch;
