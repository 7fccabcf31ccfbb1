-- Which fixings stood at a given moment? `select * from fixings_as_of(timestamp '2026-11-21 10:30')` gives,
-- for every index and date, the newest revision computed at or before that moment (a TIMESTAMP in UTC, like
-- every column); fixings_as_of(null) the newest revision of all. The rule of sql/select_fixings_as_of.sql
-- (tsi fixings --as-of): history is append-only, so the answer for a past moment never changes.
-- The parameter is typed: a TIMESTAMPTZ is refused rather than shifted by the session's time zone.
create or replace macro fixings_as_of(as_of timestamp) as table
with revisions as (
    select
        f.*,
        -- over every revision, before the moment's filter: whether a correction came later
        f.revision = max(f.revision) over (partition by f.index_id, f.fixing_date) as is_newest_revision
    from fixings as f
),

known as (
    select *
    from revisions
    where as_of is null or computed_at <= as_of
    qualify revision = max(revision) over (partition by index_id, fixing_date)
)

select
    k.index_id,
    k.fixing_date,
    k.revision,
    k.is_newest_revision,
    k.status,
    k.usd_per_gpu_hour,
    k.usd_per_mtok,
    case d.definition_json ->> 'instrument_kind'
        when 'gpu' then 'USD/GPU-hour'
        when 'token' then 'USD/Mtok'
    end as unit,
    k.n_providers,
    k.n_observations,
    k.methodology_version,
    k.computed_at,
    k.revision_reason,
    coalesce(k.backfill, false) as backfill
from known as k
left join index_definitions as d using (index_id, methodology_version)
order by k.fixing_date, k.index_id;
