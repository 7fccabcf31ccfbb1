-- The observations behind the digests of select_fixing_digests.sql, for the providers whose value needs
-- their rows: a leg (price type) made of several digests (a paged API's bodies, two sources, several
-- validity intervals), a value rule other than the median of rows (median of region medians, a
-- marketplace's GPU-weighted median), or a dispersion over observations. Every other provider's value comes
-- from its one digest's statistics, without reading a row.
--
-- fixing_digests: this pass's output of select_fixing_digests.sql; fix_target_params: one row per target.
-- $window_floor, $window_ceiling: as in select_fixing_digests.sql, to skip the row groups outside the period.
with legs as (
    select target_id, provider, price_type, count(*) as n_digests, min(value_rule) as value_rule
    from fixing_digests
    group by target_id, provider, price_type
),

needing_rows as (
    select distinct l.target_id, l.provider
    from legs as l
    join fix_target_params as p using (target_id)
    where l.n_digests > 1 or l.value_rule <> 'median_of_rows' or p.dispersion_basis = 'observations'
),

wanted as (
    select d.target_id, d.snapshot_id, d.provider, d.segment, d.instrument_kind, d.instrument, d.price_type,
           d.valid_from, d.valid_to, d.valid_until
    from fixing_digests as d
    semi join needing_rows as n using (target_id, provider)
)

select
    w.target_id,
    o.rowid as obs_rowid,
    o.provider,
    o.source,
    o.segment,
    o.price_type,
    o.region,
    coalesce(o.gpu_count, 1) as gpu_weight,  -- a marketplace offer weighs its GPU count; a row without one, 1
    o.observed_at,
    coalesce(o.usd_per_gpu_hour, o.usd_per_mtok) as usd_price
from wanted as w
join observations as o
    -- the digest's group (insert_observation_digests.sql), nulls matching nulls
    on  o.snapshot_id = w.snapshot_id
    and o.provider = w.provider
    and coalesce(o.segment, chr(0)) = coalesce(w.segment, chr(0))
    and o.instrument_kind = w.instrument_kind
    and o.instrument = w.instrument
    and o.price_type = w.price_type
    and coalesce(o.valid_from, date '0001-01-01') = coalesce(w.valid_from, date '0001-01-01')
    and coalesce(o.valid_to, date '0001-01-01') = coalesce(w.valid_to, date '0001-01-01')
    and coalesce(o.valid_until, date '0001-01-01') = coalesce(w.valid_until, date '0001-01-01')
-- collected rows fetched in the period; imported ones (valid_until, migration 009) count by date
where (o.valid_until is null and o.observed_at > $window_floor and o.observed_at <= $window_ceiling)
   or o.valid_until >= $window_floor::date;
