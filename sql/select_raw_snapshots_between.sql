-- The snapshots a recomputation of a period needs from the raw store: those fetched in
-- ($fetched_after, $fetched_until], and those of the FX sources ($fx_sources) fetched in
-- ($fx_after, $fetched_until] (a price converts at a rate published up to some days before), with the
-- time each was first loaded; and the imported snapshots (tsi import) that count by date on a date of
-- $first_date or later and whose rows reach $last_date or earlier, wherever their fetch time lies (a dated
-- history may be fetched long after the dates it prices).
select
    s.snapshot_id, s.sha256, s.source, s.url, s.provider, s.fetched_at, s.http_status, s.content_type, s.byte_size,
    s.storage_path, s.imported_at, s.valid_days, s.valid_until,
    -- when the warehouse first loaded the body's observations (null: never): a fixing computed before that
    -- could not see them, so tsi verify leaves them out of its recomputation
    (select min(p.parsed_at) from snapshot_parses as p
     where p.snapshot_id = s.snapshot_id and p.outcome = 'loaded') as first_loaded_at
from raw_snapshots as s
where (s.fetched_at <= $fetched_until
       and (s.fetched_at > $fetched_after or (list_contains($fx_sources, s.source) and s.fetched_at > $fx_after)))
   or (s.valid_until >= $first_date
       -- and whose rows reach the period: the first date a row counts for (its own valid_from where the source
       -- dates its prices, else the fetch date) is not after it, so a day's verify does not re-read every later
       -- import
       and exists (select 1 from observation_digests as d
                   where d.snapshot_id = s.snapshot_id
                     and coalesce(d.valid_from, d.observed_at::date) <= $last_date))
order by s.fetched_at, s.snapshot_id;
