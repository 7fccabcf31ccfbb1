-- Record one imported body (tsi import), already in the raw store, with the time its manifest gives as its
-- fetch time. Importing the same body again (same id: source, url, time and body) adds nothing; the
-- snapshot id is returned only when the row is new. valid_until is set by update_imported_validity.sql.
insert into raw_snapshots (
    snapshot_id, sha256, source, url, provider, fetched_at, http_status, content_type, byte_size, storage_path,
    imported_at, valid_days
)
values (
    $snapshot_id, $sha256, $source, $url, $provider, $fetched_at, 200, $content_type, $byte_size, $storage_path,
    $imported_at, $valid_days
)
on conflict do nothing
returning snapshot_id;
