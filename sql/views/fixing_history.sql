-- How did an index's fixings come to be what they are? Every fixing date and every revision of every index,
-- with whether it is the newest revision of its date, when it was computed and when a later revision
-- superseded it. The revision that stood at a given moment is the table macro fixings_as_of (its own file).
create or replace view fixing_history as
with revisions as (
    select
        f.*,
        f.revision = max(f.revision) over same_date as is_newest_revision,
        count(*) over same_date as n_revisions,
        lead(f.computed_at) over (same_date order by f.revision) as superseded_at
    from fixings as f
    window same_date as (partition by f.index_id, f.fixing_date)
)

select
    r.index_id,
    r.fixing_date,
    r.revision,
    r.is_newest_revision,
    r.n_revisions,
    r.status,
    r.usd_per_gpu_hour,
    r.usd_per_mtok,
    case d.definition_json ->> 'instrument_kind'
        when 'gpu' then 'USD/GPU-hour'
        when 'token' then 'USD/Mtok'
    end as unit,
    r.n_providers,
    r.n_observations,
    r.methodology_version,
    r.window_hours,
    r.carried_from,
    r.input_hash,
    r.computed_at,
    r.superseded_at,
    r.revision_reason,
    coalesce(r.backfill, false) as backfill  -- null before migration 009: those were all live
from revisions as r
left join index_definitions as d using (index_id, methodology_version)
order by r.index_id, r.fixing_date, r.revision;
