-- How much did each source give each day? One row per source and UTC date with a fetch attempt or a body:
-- attempts and failed attempts (fetch_log), bodies stored, distinct bodies and their bytes (raw_snapshots),
-- and bodies that could not be read (their latest parse failed, snapshot_parses). Live collection only, as in
-- source_health: imported bodies are dated by their manifest, not fetched that day.
create or replace view source_health_daily as
with attempts as (
    select
        source,
        attempted_at::date as fetch_date,
        count(*) as n_attempts,
        count(*) filter (where outcome = 'failed') as n_failed_attempts
    from fetch_log
    group by all
),

live_snapshots as (
    select snapshot_id, source, fetched_at::date as fetch_date, sha256, byte_size
    from raw_snapshots
    where imported_at is null
),

latest_parses as (
    select snapshot_id, outcome
    from snapshot_parses
    qualify row_number() over (partition by snapshot_id order by parsed_at desc) = 1
),

bodies as (
    select
        s.source,
        s.fetch_date,
        count(*) as n_bodies,
        count(distinct s.sha256) as n_distinct_bodies,
        sum(s.byte_size)::bigint as n_bytes,
        count(*) filter (where p.outcome = 'failed') as n_unreadable_bodies,
        count(*) filter (where p.outcome is null) as n_unparsed_bodies
    from live_snapshots as s
    left join latest_parses as p using (snapshot_id)
    group by all
)

select
    source,
    fetch_date,
    coalesce(a.n_attempts, 0) as n_attempts,
    coalesce(a.n_failed_attempts, 0) as n_failed_attempts,
    coalesce(b.n_bodies, 0) as n_bodies,
    coalesce(b.n_distinct_bodies, 0) as n_distinct_bodies,
    coalesce(b.n_bytes, 0) as n_bytes,
    coalesce(b.n_unreadable_bodies, 0) as n_unreadable_bodies,
    coalesce(b.n_unparsed_bodies, 0) as n_unparsed_bodies
from attempts as a
full join bodies as b using (source, fetch_date)
order by source, fetch_date;
