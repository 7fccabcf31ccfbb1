-- What is each index worth now? One row per index: its newest fixing date, in the newest revision of that
-- date (history is append-only: a correction is a later revision, sql/select_fixings_as_of.sql with no
-- moment), with its status, the providers included, the revision and when it was computed. The newest date
-- may be suppressed (no value): the status says so.
create or replace view latest_fixings as
with newest_dates as (
    select index_id, max(fixing_date) as fixing_date
    from fixings
    group by index_id
),

newest_revisions as (
    select f.*
    from fixings as f
    semi join newest_dates as d using (index_id, fixing_date)
    qualify f.revision = max(f.revision) over (partition by f.index_id, f.fixing_date)
),

included_providers as (
    -- for a basket, its member indices
    select c.index_id, c.fixing_date, c.revision, list(c.provider order by c.provider) as providers
    from fixing_constituents as c
    semi join newest_revisions as r using (index_id, fixing_date, revision)
    where c.included
    group by all
)

select
    r.index_id,
    d.definition_json ->> 'name' as index_name,
    r.fixing_date,
    r.revision,
    r.status,
    r.usd_per_gpu_hour,
    r.usd_per_mtok,
    case d.definition_json ->> 'instrument_kind'
        when 'gpu' then 'USD/GPU-hour'
        when 'token' then 'USD/Mtok'
    end as unit,
    r.n_providers,
    r.n_observations,
    coalesce(p.providers, []::varchar[]) as providers,
    r.methodology_version,
    r.window_start,
    r.window_end,
    r.window_hours,
    r.carried_from,
    r.input_hash,
    r.computed_at,
    coalesce(r.backfill, false) as backfill,  -- null before migration 009: those were all live
    r.revision_reason
from newest_revisions as r
left join index_definitions as d using (index_id, methodology_version)
left join included_providers as p using (index_id, fixing_date, revision)
order by r.index_id;
