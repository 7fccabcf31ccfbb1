-- A (re)load replaces what the snapshot gave before, inside the caller's transaction: a rerun is harmless.
delete from observations where snapshot_id = $snapshot_id;
