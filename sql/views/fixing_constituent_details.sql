-- What does a fixing rest on, and what was left out, and why? One row per provider (for a basket: per member
-- index) considered in each revision of each fixing: its value in the fixing's unit, weight, the rule that
-- made it and the collection it came from; for one left out, the exclusion code and reason (README
-- "Methodology": outlier_mad, insufficient_distinct_prices, incomplete_blend, insufficient_providers,
-- member_suppressed, insufficient_members). A jump flag (observation_flags) never excludes a price: the
-- flagged rows of the constituent's snapshot are counted so that a person knows where to look.
create or replace view fixing_constituent_details as
with newest as (
    select index_id, fixing_date, max(revision) as newest_revision
    from fixings
    group by all
),

snapshot_flags as (
    select snapshot_id, count(*) as n_jump_flags
    from observation_flags
    where flag = 'jump_vs_previous'
    group by snapshot_id
)

select
    c.index_id,
    c.fixing_date,
    c.revision,
    c.revision = n.newest_revision as is_newest_revision,
    f.status as fixing_status,
    c.provider,
    c.included,
    case when c.exclusion_reason is not null then split_part(c.exclusion_reason, ':', 1) end as exclusion_code,
    c.exclusion_reason,
    -- fixing_constituents.provider_value is in the unit of the index: split by its kind
    case when d.definition_json ->> 'instrument_kind' = 'gpu' then c.provider_value end
        as provider_usd_per_gpu_hour,
    case when d.definition_json ->> 'instrument_kind' = 'token' then c.provider_value end
        as provider_usd_per_mtok,
    c.weight,
    c.value_rule,
    c.n_observations,
    c.snapshot_id,
    s.source,
    c.observed_at,
    c.valid_until,
    case when c.snapshot_id is not null then coalesce(g.n_jump_flags, 0) end as n_jump_flags_in_snapshot
from fixing_constituents as c
join fixings as f using (index_id, fixing_date, revision)
join newest as n using (index_id, fixing_date)
left join index_definitions as d on d.index_id = c.index_id and d.methodology_version = f.methodology_version
left join raw_snapshots as s on s.snapshot_id = c.snapshot_id
left join snapshot_flags as g on g.snapshot_id = c.snapshot_id
order by c.index_id, c.fixing_date, c.revision, c.included desc, c.provider_value nulls last, c.provider;
