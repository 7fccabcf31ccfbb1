-- Is each source working? One row per source ever fetched: its last success and last failure (URL, HTTP
-- status, error), the failed attempts, the URLs whose latest attempt failed (failing now), the bodies it gave
-- and on how many days, the bodies of its newest day, and the bodies that arrived but could not be read
-- (their latest parse failed, snapshot_parses). Live collection only: a body brought in by tsi import
-- (raw_snapshots.imported_at) is dated by its manifest and says nothing about the source today. Per day:
-- the view source_health_daily.
create or replace view source_health as
with attempts as (
    select
        source,
        count(*) as n_attempts,
        count(*) filter (where outcome = 'failed') as n_failed_attempts,
        max(attempted_at) as last_attempt_at,
        max(attempted_at) filter (where outcome = 'stored') as last_success_at,
        max(attempted_at) filter (where outcome = 'failed') as last_failure_at
    from fetch_log
    group by source
),

last_failures as (
    select
        source,
        url as last_failure_url,
        http_status as last_failure_http_status,
        error as last_failure_error
    from fetch_log
    where outcome = 'failed'
    qualify row_number() over (partition by source order by attempted_at desc, url) = 1
),

failing_now as (
    -- a source fetches many URLs (one catalog per cloud, one endpoint list per model): count those whose
    -- newest attempt failed
    select source, count(*) filter (where outcome = 'failed') as n_urls_failing_now
    from (
        select source, url, outcome
        from fetch_log
        qualify row_number() over (partition by source, url order by attempted_at desc) = 1
    )
    group by source
),

live_snapshots as (
    select snapshot_id, source, fetched_at
    from raw_snapshots
    where imported_at is null
),

bodies as (
    select
        source,
        count(*) as n_bodies,
        count(distinct fetched_at::date) as n_days_with_bodies,
        max(fetched_at::date) as last_body_date
    from live_snapshots
    group by source
),

last_day_bodies as (
    select s.source, count(*) as n_bodies_last_day
    from live_snapshots as s
    join bodies as b on b.source = s.source and s.fetched_at::date = b.last_body_date
    group by s.source
),

latest_parses as (
    select snapshot_id, parsed_at, outcome, error
    from snapshot_parses
    qualify row_number() over (partition by snapshot_id order by parsed_at desc) = 1
),

unreadable as (
    select
        s.source,
        count(*) as n_unreadable_bodies,
        max(s.fetched_at) as last_unreadable_fetched_at,
        arg_max(p.error, s.fetched_at) as last_unreadable_error
    from latest_parses as p
    join live_snapshots as s using (snapshot_id)
    where p.outcome = 'failed'
    group by s.source
),

sources as (
    select source from attempts
    union
    select source from bodies
)

select
    source,
    a.last_attempt_at,
    a.last_success_at,
    a.last_failure_at,
    f.last_failure_url,
    f.last_failure_http_status,
    f.last_failure_error,
    coalesce(a.n_attempts, 0) as n_attempts,
    coalesce(a.n_failed_attempts, 0) as n_failed_attempts,
    coalesce(n.n_urls_failing_now, 0) as n_urls_failing_now,
    coalesce(b.n_bodies, 0) as n_bodies,
    coalesce(b.n_days_with_bodies, 0) as n_days_with_bodies,
    b.last_body_date,
    coalesce(l.n_bodies_last_day, 0) as n_bodies_last_day,
    coalesce(u.n_unreadable_bodies, 0) as n_unreadable_bodies,
    u.last_unreadable_fetched_at,
    u.last_unreadable_error
from sources
left join attempts as a using (source)
left join last_failures as f using (source)
left join failing_now as n using (source)
left join bodies as b using (source)
left join last_day_bodies as l using (source)
left join unreadable as u using (source)
order by source;
