-- The fixing dates the observations of imported bodies ($sha256s) can count for: from the earliest first
-- date (the row's own valid_from where the source dates its prices, else its fetch date) to the latest last
-- date (its own valid_to, at most the snapshot's valid_until). Null when they gave no observation.
select min(coalesce(d.valid_from, d.observed_at::date)) as first_date,
       max(least(coalesce(d.valid_to, d.valid_until), d.valid_until)) as last_date
from observation_digests as d
join raw_snapshots as s using (snapshot_id)
where s.imported_at is not null
  and list_contains($sha256s, s.sha256);
