-- Given snapshots ($snapshot_ids), to parse again whatever their earlier parses gave (an imported snapshot
-- whose valid_until changed), in the loader's order: FX sources ($first_sources) first, then oldest first.
select s.snapshot_id, s.sha256, s.source, s.url, s.provider, s.fetched_at, s.valid_until
from raw_snapshots s
where list_contains($snapshot_ids, s.snapshot_id)
order by not list_contains($first_sources, s.source), s.fetched_at, s.snapshot_id;
