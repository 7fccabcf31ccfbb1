-- Record one fetch whose body is already in the raw store. A replayed fetch (same id) adds nothing.
insert into raw_snapshots
    (snapshot_id, sha256, source, url, provider, fetched_at, http_status, content_type, byte_size, storage_path)
values
    ($snapshot_id, $sha256, $source, $url, $provider, $fetched_at, $http_status, $content_type, $byte_size, $storage_path)
on conflict do nothing;
