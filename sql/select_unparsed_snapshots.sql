-- Snapshots never parsed, oldest first, so a re-run parses only what is new (a re-parse is explicit).
select s.snapshot_id, s.sha256, s.source, s.url, s.provider, s.fetched_at
from raw_snapshots s
where not exists (
    select 1 from snapshot_parses p where p.snapshot_id = s.snapshot_id
)
order by s.fetched_at, s.snapshot_id;
