-- Every index the warehouse knows, for `tsi chart`: its kind (gpu or token: the unit of its axis) and name,
-- from the definition of its newest methodology version, and the span of its fixings (null when it has none).
with newest_definition as (
    select
        index_id,
        json_extract_string(definition_json, '$.instrument_kind') as instrument_kind,
        json_extract_string(definition_json, '$.name') as name
    from index_definitions
    qualify row_number() over (partition by index_id order by first_seen_at desc, methodology_version desc) = 1
),
fixed_span as (
    select index_id, min(fixing_date) as first_fixed, max(fixing_date) as last_fixed
    from fixings
    group by index_id
)
select
    d.index_id,
    d.instrument_kind,
    d.name,
    s.first_fixed,
    s.last_fixed
from newest_definition as d
left join fixed_span as s using (index_id)
order by d.index_id;
