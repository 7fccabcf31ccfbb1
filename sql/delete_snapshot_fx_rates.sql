-- A (re)load replaces the rates the snapshot gave before, inside the caller's transaction.
delete from fx_rates where snapshot_id = $snapshot_id;
