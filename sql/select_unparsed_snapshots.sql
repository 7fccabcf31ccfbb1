-- Snapshots never parsed, so a re-run parses only what is new (a re-parse is explicit). Rate snapshots of the
-- FX sources ($first_sources) come first, then oldest first: a price in another currency converts at a rate
-- that the same run stored, whatever the order the bodies were fetched in. Loading a rate early cannot
-- misdate it: each rate carries the date the ECB published it for, not its fetch time. valid_until: an imported
-- snapshot's last fixing date (migration 009), copied onto its observations.
select s.snapshot_id, s.sha256, s.source, s.url, s.provider, s.fetched_at, s.valid_until
from raw_snapshots s
where not exists (
    select 1 from snapshot_parses p where p.snapshot_id = s.snapshot_id
)
order by not list_contains($first_sources, s.source), s.fetched_at, s.snapshot_id;
